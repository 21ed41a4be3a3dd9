// Issue #15's widget logic (no DOM): file limits and checks, upload failures, agent and visitor
// files in payloads and history, the survey's scale, the visitor's details. Run: npm test
import assert from "node:assert/strict";
import { test } from "node:test";

import { asksForInput, ratingScale, replyLabel } from "../src/after-chat.js";
import { attachmentLimits, checkFiles, formatBytes, limitsText, newRelayId, uploadFailure, uploadUrl } from "../src/attachments.js";
import { handoffState, sameMessage } from "../src/conversation.js";
import { fromBotPayload, fromHistoryEntry, labelPayloads, visitorAttachment } from "../src/messages.js";
import { checkDetails, customerOf, PreEngagement, preEngagementFields } from "../src/visitor-details.js";

globalThis.window = globalThis.window || { location: { href: "https://shop.example.com/" } };

const OFFER = { max_bytes: 16777216, types: ["image/jpeg", "image/png", "image/gif", "application/pdf", "text/plain"], upload_path: "/webhooks/handoff_socketio/media" };
const notice = (event, fields = {}, extra = {}) =>
  fromBotPayload({ text: event, ...extra, metadata: { handoff: { sender: "system", event, ...fields } } });
const file = (name, type, size) => ({ name, type, size });

test("the connecting notice's attachment offer, and only a usable one", () => {
  const limits = attachmentLimits(OFFER);
  assert.deepEqual(limits, { maxBytes: 16777216, types: OFFER.types, uploadPath: "/webhooks/handoff_socketio/media" });
  assert.equal(limitsText(limits), "One file per message, up to 16 MB: JPEG, PNG, GIF, PDF or text files");
  assert.equal(attachmentLimits(null), null);
  assert.equal(attachmentLimits({ ...OFFER, upload_path: "https://elsewhere.example/upload" }), null, "a path on our server only");
  assert.equal(attachmentLimits({ ...OFFER, upload_path: "//elsewhere.example/upload" }), null);
  assert.equal(attachmentLimits({ ...OFFER, max_bytes: 0 }), null);
  assert.equal(attachmentLimits({ ...OFFER, types: [] }), null);
  assert.equal(uploadUrl("https://bot.example.com/", limits.uploadPath, "a b"), "https://bot.example.com/webhooks/handoff_socketio/media/a%20b");
});

test("the attach button follows the agent chat that offered files", () => {
  const connecting = notice("connecting", { attachments: OFFER });
  assert.equal(handoffState([connecting]).attachments.maxBytes, 16777216, "while waiting");
  const joined = notice("agent_joined", { agent: { name: "Alice" } });
  assert.ok(handoffState([connecting, joined]).attachments, "with the agent");
  assert.equal(handoffState([connecting, joined, notice("chat_closed")]).attachments, null, "not after the chat");
  assert.equal(handoffState([notice("connecting"), joined]).attachments, null, "not when the server offers none");
  assert.equal(handoffState([connecting, notice("chat_closed"), notice("connecting"), joined]).attachments, null, "each chat says its own");
});

test("files are checked before anything is sent", () => {
  const limits = attachmentLimits({ ...OFFER, max_bytes: 2048 });
  assert.equal(checkFiles([file("a.png", "image/png", 2048)], limits), null);
  assert.equal(checkFiles([file("a.png", "image/png", 2049)], limits).code, "too_large");
  assert.match(checkFiles([file("a.png", "image/png", 5000)], limits).error, /too large \(5 KB\): files can be up to 2 KB/);
  const zip = checkFiles([file("a.zip", "application/zip", 10)], limits);
  assert.equal(zip.code, "type_not_allowed");
  assert.match(zip.error, /ZIP files aren't allowed\. You can send JPEG, PNG, GIF, PDF or text files\./);
  assert.equal(checkFiles([file("noext", "", 10)], limits).code, "type_not_allowed");
  assert.equal(checkFiles([file("a.png", "image/png", 1), file("b.png", "image/png", 1)], limits).code, "several_files");
  assert.equal(checkFiles([file("a.txt", "text/plain", 0)], limits).code, "empty");
  assert.equal(formatBytes(16777216), "16 MB");
  assert.equal(formatBytes(1536 * 1024), "1.5 MB");
  assert.match(newRelayId(), /^[A-Za-z0-9_-]{1,64}$/);
  assert.match(newRelayId({ getRandomValues: (bytes) => bytes.fill(7) }), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("upload failures: the server's sentence, and a retry only where it can help", () => {
  const twilio = uploadFailure(502, { error: "Flex did not take the file.", code: "flex_failed" });
  assert.deepEqual(twilio, { status: 502, code: "flex_failed", error: "Flex did not take the file.", retryable: true });
  assert.equal(uploadFailure(0, { code: "network" }).retryable, true);
  for (const status of [400, 401, 404, 409, 413, 415]) assert.equal(uploadFailure(status, null).retryable, false, String(status));
  assert.equal(uploadFailure(409, null).error, "The agent chat has ended, so the file was not sent.");
  assert.equal(uploadFailure(503, "<html>").error, "The file couldn't be passed on to the agent.");
});

test("agent files, Rasa's image shape, and the visitor's own file from history", () => {
  const url = "https://bot.example.com/webhooks/handoff_socketio/media/file/tok";
  const image = fromBotPayload({
    text: "Alice: photo.png",
    attachment: { type: "image", payload: { src: url } },
    metadata: { handoff: { sender: "agent", agent: { name: "Alice" }, message_sid: "IM1",
      attachment: { url, filename: "photo.png", content_type: "image/png", size: 2000, kind: "image" } } },
  });
  assert.deepEqual(image.attachment, { url, filename: "photo.png", contentType: "image/png", size: 2000, kind: "image" });
  assert.equal(image.image, null, "shown once: as the file");
  const stock = fromBotPayload({ attachment: { type: "image", payload: { src: url } } });
  assert.equal(stock.image.src, url);
  const unsafe = fromBotPayload({ text: "x", metadata: { handoff: { sender: "agent", attachment: { url: "javascript:alert(1)", filename: "x.pdf" } } } });
  assert.equal(unsafe.attachment.url, null);
  assert.equal(unsafe.attachment.kind, "file");

  const mine = fromHistoryEntry({ sender: "visitor", text: "receipt.pdf", timestamp: 1,
    metadata: { handoff: { sender: "visitor", attachment: { filename: "receipt.pdf", content_type: "application/pdf", size: 1234, kind: "file" } } } });
  assert.equal(mine.sender, "visitor");
  assert.equal(mine.attachment.filename, "receipt.pdf");
  // The file shown while it uploaded is the same turn as history's, whatever its link.
  const local = visitorAttachment({ name: "receipt.pdf", type: "application/pdf", size: 1234 }, "relay-1");
  local.timestamp = mine.timestamp;
  assert.ok(sameMessage(local, mine));
  assert.ok(!sameMessage({ ...local, attachment: null }, mine), "a typed 'receipt.pdf' is not the file");
});

test("the survey's buttons as a 1-5 scale; the answer reads as stars", () => {
  const buttons = [1, 2, 3, 4, 5].map((n) => ({ title: String(n), payload: `/handoff_rating{"rating": ${n}}` }));
  const survey = notice("survey", {}, { quick_replies: [...buttons, { title: "Skip", payload: "/handoff_skip" }] });
  const scale = ratingScale(survey.quickReplies);
  assert.deepEqual(scale.ratings.map((r) => r.payload), buttons.map((b) => b.payload));
  assert.deepEqual(scale.others.map((r) => r.title), ["Skip"]);
  assert.equal(replyLabel(survey, survey.quickReplies[3]), "4 out of 5 stars");
  assert.equal(replyLabel(survey, survey.quickReplies[5]), "Skip");
  assert.equal(ratingScale(buttons.slice(0, 4)), null, "not a full scale: plain buttons");
  const history = [survey, { sender: "visitor", text: buttons[1].payload, payload: buttons[1].payload, quickReplies: [] }];
  labelPayloads(history, {});
  assert.equal(history[1].text, "2 out of 5 stars");
  assert.ok(asksForInput(notice("survey_comment")));
  assert.ok(asksForInput(notice("transcript_email")));
  assert.ok(!asksForInput(notice("transcript_offer")));
});

test("the customer the page knows and the visitor's own details", () => {
  assert.deepEqual(customerOf({ name: " Jordan Lee ", email: "j@example.com", customer_id: 1042, role: "admin" }),
    { name: "Jordan Lee", email: "j@example.com", customer_id: "1042" });
  assert.equal(customerOf({}), null);
  assert.deepEqual(preEngagementFields(true), ["name", "email"]);
  assert.deepEqual(preEngagementFields(["email", "phone"]), ["email"]);
  assert.deepEqual(preEngagementFields(false), []);
  assert.deepEqual(checkDetails({ name: " Sam  Rivera ", email: "sam@example.com" }, ["name", "email"]), {
    details: { name: "Sam Rivera", email: "sam@example.com" }, errors: {},
  });
  assert.deepEqual(checkDetails({ name: "Sam", email: "sam@" }, ["name", "email"]).errors, { email: "Enter an email address like name@example.com." });
  assert.deepEqual(checkDetails({}, ["name", "email"]).errors, { name: "Enter your name or email, or choose Skip." });
  assert.deepEqual(checkDetails({ name: "Sam" }, ["name", "email"]).details, { name: "Sam" });

  const items = new Map();
  const storage = { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v), removeItem: (k) => items.delete(k) };
  const form = new PreEngagement(storage, "w");
  assert.equal(form.answered, false);
  form.skip();
  assert.equal(form.answered, true);
  assert.equal(form.details, null);
  form.save({ name: "Sam" });
  assert.deepEqual(form.details, { name: "Sam" });
});
