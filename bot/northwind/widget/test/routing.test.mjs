// The routing states (design #14, "Visitor-facing states"): payloads as the connector sends them over
// socket.io, the handoff state and phase they lead to, and what the header and panel say. Run: npm test
import assert from "node:assert/strict";
import { test } from "node:test";

import { Conversation, displayed, handoffState } from "../src/conversation.js";
import { fromBotPayload, fromHistoryEntry, visitorMessage } from "../src/messages.js";
import { dotKind, queueText, statusPanel, subtitleText, waitText } from "../src/status.js";

const notice = (event, text, fields = {}, extra = {}) =>
  fromBotPayload({ text, ...extra, metadata: { handoff: { sender: "system", event, ...fields } } });
const OFFER_BUTTONS = [
  { content_type: "text", title: "Leave a message", payload: "/handoff_leave_message" },
  { content_type: "text", title: "Stay with the bot", payload: "/handoff_stay" },
];
const offer = () => notice("offer", "Would you like to leave a message?", {}, { quick_replies: OFFER_BUTTONS });
const queue = (position, eta) =>
  notice("queue", `You are number ${position} in line.`, { position, eta_seconds: eta, channel_sid: "CH1" });
const state = (messages) => handoffState(messages);

test("routing notices keep their details and the offer its buttons", () => {
  const closed = notice("unavailable", "We're closed.", { reason: "closed" });
  assert.equal(closed.sender, "system");
  assert.equal(closed.reason, "closed");
  assert.deepEqual(queue(3, 240).queue, { position: 3, etaSeconds: 240 });
  assert.deepEqual(notice("queue", "Waiting", { position: "2", eta_seconds: null }).queue, { position: 2, etaSeconds: null });
  assert.deepEqual(offer().quickReplies, [
    { title: "Leave a message", payload: "/handoff_leave_message" },
    { title: "Stay with the bot", payload: "/handoff_stay" },
  ]);
  assert.equal(notice("transferring", "Alice is transferring you.", { agent: { name: "Alice" } }).agentName, "Alice");
  // Recorded as a tracker event: agent as a plain name, buttons under data.
  const recorded = fromHistoryEntry({
    event: "bot", text: "Leave a message?", timestamp: 1, data: { buttons: OFFER_BUTTONS },
    metadata: { handoff: { role: "system", event: "offer" } },
  });
  assert.equal(recorded.event, "offer");
  assert.equal(recorded.quickReplies.length, 2);
});

test("out of hours / no agents, then the offer: leave a message or stay", () => {
  const closed = [visitorMessage("/talk_to_agent"), notice("unavailable", "We're closed.", { reason: "closed" }), offer()];
  assert.deepEqual([state(closed).state, state(closed).phase, state(closed).reason], ["bot", "unavailable", "closed"]);
  assert.equal(subtitleText(state(closed)), "We're closed right now");
  assert.equal(dotKind(state(closed)), "away");
  assert.equal(statusPanel(state(closed)), null);
  const busy = [notice("unavailable", "Nobody is free.", { reason: "no_agents" }), offer()];
  assert.equal(subtitleText(state(busy)), "No agents available right now");

  const leaving = [...closed, visitorMessage("/handoff_leave_message", "Leave a message"), notice("leave_message", "What is it?")];
  assert.equal(state(leaving).phase, "leave_message");
  assert.equal(statusPanel(state(leaving)).kind, "prompt");
  leaving.push(visitorMessage("My order is late"));
  assert.equal(state(leaving).phase, "leave_message", "the prompt stays until the message is confirmed");
  leaving.push(notice("message_left", "Thanks, passed on."));
  assert.equal(state(leaving).phase, "message_left");
  assert.equal(subtitleText(state(leaving)), "Message sent: we'll get back to you");
  leaving.push(visitorMessage("thanks"));
  assert.equal(state(leaving).phase, "bot");

  const staying = [...closed, visitorMessage("/handoff_stay", "Stay with the bot"), notice("stay", "I'm still here.")];
  assert.deepEqual([state(staying).state, state(staying).phase], ["bot", "bot"]);
  assert.equal(subtitleText(state(staying), { fallback: "Our assistant" }), "Our assistant");
});

test("queue: waiting with position and ETA, updated in place, gone once decided", () => {
  const seq = [visitorMessage("/talk_to_agent"), notice("connecting", "Connecting..."), queue(3, 240)];
  assert.deepEqual([state(seq).state, state(seq).phase], ["waiting", "queued"]);
  assert.equal(statusPanel(state(seq)).title, "You are number 3 in line · about 4 min");
  assert.equal(statusPanel(state(seq)).cancel, true);
  seq.push(visitorMessage("still there?"), queue(2, 100));
  assert.equal(statusPanel(state(seq)).title, "You are number 2 in line · about 2 min");
  // One queue notice in the log, where the first was, reading like the latest.
  const shown = displayed(seq);
  assert.deepEqual(shown.map((m) => m.event || m.text), ["/talk_to_agent", "connecting", "queue", "still there?"]);
  assert.equal(shown[2].text, "You are number 2 in line.");
  assert.equal(shown[2].key, seq[2].key);

  for (const [event, fields] of [["agent_joined", { agent: { name: "Bo" } }], ["chat_closed", {}], ["bot_resumed", {}], ["not_accepted", {}]]) {
    const after = state([...seq, notice(event, event, fields)]);
    assert.equal(after.queue, null, event);
    assert.equal(statusPanel(after), null, event);
  }
});

test("queue texts with unknown parts", () => {
  assert.equal(waitText(null), "");
  assert.equal(waitText(20), "about 1 min");
  assert.equal(waitText(150), "about 3 min");
  assert.equal(queueText({ position: 1, etaSeconds: null }), "You are number 1 in line");
  assert.equal(queueText({ position: null, etaSeconds: 600 }), "about 10 min");
  assert.equal(queueText(null), "Waiting for the next free agent…");
});

test("nobody accepted: a clear state, the offer, then the bot is back", () => {
  const seq = [notice("connecting", "Connecting..."), queue(1, 30), notice("not_accepted", "Sorry, nobody could take the chat."), offer()];
  assert.deepEqual([state(seq).state, state(seq).phase], ["bot", "not_accepted"]);
  seq.push(notice("bot_resumed", "You're back with the bot."));
  assert.deepEqual([state(seq).state, state(seq).phase], ["bot", "not_accepted"], "the offer still stands");
  assert.equal(subtitleText(state(seq)), "No agent could take the chat");
  seq.push(fromBotPayload({ text: "Anything else?" }));
  assert.equal(state(seq).phase, "bot");
});

test("transfer: waiting again with the transferring agent's name, then the new agent in the header", () => {
  const seq = [
    notice("connecting", "Connecting..."),
    notice("agent_joined", "Alice joined.", { agent: { name: "Alice" } }),
    notice("transferring", "Alice is transferring you.", { agent: { name: "Alice" } }),
  ];
  assert.deepEqual([state(seq).state, state(seq).phase, state(seq).agentName], ["waiting", "transferring", ""]);
  assert.equal(statusPanel(state(seq)).title, "Alice is transferring you…");
  assert.equal(subtitleText(state(seq)), "Being transferred…");
  seq.push(notice("agent_joined", "Bob joined.", { agent: { name: "Bob" } }));
  assert.deepEqual([state(seq).state, state(seq).agentName], ["agent", "Bob"]);
  assert.equal(subtitleText(state(seq)), "You're chatting with Bob");

  // The older notice for the same thing: the agent left, the chat stays open.
  const left = [notice("agent_joined", "Alice joined.", { agent: { name: "Alice" } }), notice("agent_left", "Alice left.", { agent: { name: "Alice" } })];
  assert.deepEqual([state(left).state, state(left).phase], ["waiting", "transferring"]);
  assert.equal(statusPanel(state(left)).title, "Waiting for another agent…");
  left.push(notice("chat_closed", "The chat has ended."));
  assert.equal(state(left).state, "ended");
});

test("existing notices keep their meaning", () => {
  const seq = [notice("connecting", "c"), notice("agent_joined", "j", { agent: { name: "A" } }), notice("relay_failed", "r"), notice("too_fast", "t")];
  assert.deepEqual([state(seq).state, state(seq).agentName], ["agent", "A"]);
  seq.push(notice("visitor_left", "v"));
  assert.equal(state(seq).state, "ended");
  seq.push(notice("bot_resumed", "b"));
  assert.deepEqual([state(seq).state, state(seq).phase], ["bot", "bot"]);
});

test("a queue update is not a new message in the conversation's view", () => {
  const conversation = new Conversation();
  conversation.add(notice("connecting", "Connecting..."));
  conversation.add(queue(3, 300));
  const before = conversation.visible.length;
  conversation.add(queue(2, 200));
  assert.equal(conversation.visible.length, before);
  assert.equal(conversation.visible.at(-1).text, "You are number 2 in line.");
});
