// The message model, and how bot payloads and history entries become messages.
//
// A message: { key, id, sender: "visitor"|"bot"|"agent"|"system", text, timestamp (ms),
//   agentName, event, reason, queue: {position, etaSeconds}, quickReplies: [{title, payload}],
//   image: {src, alt}, attachment: {url, filename, contentType, size, kind: "image"|"file", localUrl},
//   attachments (the limits a `connecting` notice offers), upload: {state, relayId, error, retryable},
//   payload, pending }
//
// Payloads have the shapes Rasa's socket.io output sends ({text}, {text, quick_replies},
// {attachment}); agent and system turns add `metadata.handoff`: {sender: "agent"|"system",
// event, agent: {name}, body (the agent's words without "Name: "), message_sid, timestamp}; routing
// notices add `reason` (unavailable: "closed" | "no_agents") or `position` and `eta_seconds` (queue),
// and the offer carries its buttons as Rasa's `quick_replies`. Files: an agent's file carries
// `metadata.handoff.attachment` {url, filename, content_type, size, kind} (images also Rasa's
// `attachment: {type: "image", payload: {src}}`); so does the visitor's own file turn in history.

import { replyLabel } from "./after-chat.js";
import { attachmentLimits } from "./attachments.js";

export const SYSTEM_EVENTS = [
  "connecting", "agent_joined", "agent_left", "chat_closed", "visitor_left", "bot_resumed", "relay_failed", "too_fast",
  "unavailable", "offer", "leave_message", "message_left", "stay", "queue", "not_accepted", "transferring",
  "survey", "survey_comment", "survey_thanks", "transcript_offer", "transcript_email", "transcript_sent", "transcript_failed",
];

let counter = 0;
function localKey() {
  counter += 1;
  return `local-${Date.now().toString(36)}-${counter}`;
}

export function toMillis(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number" && isFinite(value)) return value < 1e12 ? Math.round(value * 1000) : value;
  if (typeof value === "string") {
    if (/^\d+(\.\d+)?$/.test(value)) return toMillis(Number(value));
    const parsed = Date.parse(value);
    return isNaN(parsed) ? null : parsed;
  }
  return null;
}

function asText(value) {
  return typeof value === "string" ? value : value === null || value === undefined ? "" : String(value);
}

function agentNameOf(value) {
  if (!value) return "";
  if (typeof value === "string") return value;
  return asText(value.name || value.friendly_name || value.identity || "");
}

function quickRepliesOf(data) {
  const list = data.quick_replies || data.buttons || [];
  if (!Array.isArray(list)) return [];
  return list
    .filter((r) => r && (r.title || r.payload))
    .map((r) => ({ title: asText(r.title || r.payload), payload: asText(r.payload || r.title) }));
}

function safeUrl(value) {
  try {
    const url = new URL(asText(value), window.location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch (_) {
    return null;
  }
}

function imageOf(data) {
  const attachment = data.attachment || (data.image ? { type: "image", payload: { src: data.image } } : null);
  if (!attachment || typeof attachment !== "object") return null;
  if (attachment.type !== "image") return null;
  const payload = attachment.payload || {};
  const src = safeUrl(payload.src || payload.url);
  return src ? { src, alt: asText(payload.alt || payload.title || "Image") } : null;
}

const IMAGE_KINDS = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/** A file turn's `metadata.handoff.attachment` as shown; null without a file name. The URL stays http(s) only. */
export function attachmentOf(raw) {
  if (!raw || typeof raw !== "object") return null;
  const filename = asText(raw.filename).trim();
  if (!filename) return null;
  const contentType = asText(raw.content_type).toLowerCase();
  const size = countOf(raw.size);
  const url = raw.url ? safeUrl(raw.url) : null;
  const kind = raw.kind === "image" || raw.kind === "file" ? raw.kind : IMAGE_KINDS.includes(contentType) ? "image" : "file";
  return { url, filename, contentType, size: size === null ? null : Math.round(size), kind };
}

function countOf(value) {
  const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  return typeof number === "number" && isFinite(number) && number >= 0 ? number : null;
}

/** A queue notice's place in line and expected wait (either may be unknown: null). */
function queueOf(handoff) {
  const position = countOf(handoff.position);
  return { position: position === null ? null : Math.round(position), etaSeconds: countOf(handoff.eta_seconds) };
}

function handoffOf(data) {
  const meta = data.metadata && typeof data.metadata === "object" ? data.metadata.handoff : null;
  return meta && typeof meta === "object" ? meta : {};
}

function finish(message) {
  message.key = message.id ? `id:${message.id}` : localKey();
  return message;
}

/** A `bot_uttered` payload as a message (or null when there is nothing to show or track). */
export function fromBotPayload(data, receivedAt = Date.now()) {
  if (typeof data === "string") data = { text: data };
  if (!data || typeof data !== "object") return null;

  const handoff = handoffOf(data);
  const id = asText(handoff.message_sid || data.id || data.message_id || "") || null;
  const timestamp = toMillis(handoff.timestamp) || toMillis(data.timestamp) || receivedAt;
  const sender = handoff.sender === "agent" || handoff.sender === "system" ? handoff.sender : "bot";
  const message = {
    id,
    sender,
    // The agent's name shows beside the bubble: the words alone inside it.
    text: sender === "agent" && typeof handoff.body === "string" ? handoff.body : asText(data.text),
    timestamp,
    agentName: sender === "agent" ? agentNameOf(handoff.agent) || "Agent" : agentNameOf(handoff.agent),
    event: sender === "system" ? asText(handoff.event) : "",
    // System notices may ask too: the offer after "unavailable" / "not_accepted" has buttons.
    quickReplies: sender === "agent" ? [] : quickRepliesOf(data),
    image: imageOf(data),
    attachment: attachmentOf(handoff.attachment),
  };
  // A file is shown by its card or preview: Rasa's image shape of the same file is for stock widgets.
  if (message.attachment) message.image = null;
  if (message.event === "unavailable") message.reason = asText(handoff.reason);
  if (message.event === "queue") message.queue = queueOf(handoff);
  if (message.event === "connecting") message.attachments = attachmentLimits(handoff.attachments);
  if (!message.text && !message.image && !message.attachment && !message.quickReplies.length) return null; // unknown custom payload
  return finish(message);
}

const VISITOR_SENDERS = ["visitor", "user", "customer"];

/**
 * One entry of the history endpoint as a message. Accepts the connector's message shape
 * ({sender, text, timestamp, ...bot payload fields}) and raw Rasa tracker events
 * ({event: "user"|"bot", text, timestamp, data}).
 */
export function fromHistoryEntry(entry) {
  if (!entry || typeof entry !== "object") return null;
  const sender = asText(entry.sender || entry.role || entry.author).toLowerCase();
  if (!sender) {
    // A raw tracker event; system payloads also have an `event`, but always a sender too.
    if (entry.event === "user") {
      return visitorFromHistory({ text: entry.text, timestamp: entry.timestamp, id: entry.message_id, metadata: entry.metadata });
    }
    if (entry.event === "bot") return fromTrackerBotEvent(entry);
    if (entry.event) return null; // slots, actions, sessions...
  }
  if (VISITOR_SENDERS.includes(sender)) return visitorFromHistory(entry);
  return fromBotPayload(entry, toMillis(entry.timestamp) || Date.now());
}

/**
 * A recorded bot turn split the way Rasa's socket.io output sends it live: one message per
 * paragraph ("\n\n"), buttons on the last one, an image as a message of its own. Without this,
 * a turn seen live would not match its history entry and would show twice.
 */
export function splitLikeRasa(message) {
  if (!message || message.sender !== "bot") return [message];
  const paragraphs = message.text ? message.text.trim().split("\n\n") : [];
  const parts = paragraphs.map((text) => ({ ...message, text, quickReplies: [], image: null }));
  if (parts.length) parts[parts.length - 1].quickReplies = message.quickReplies;
  if (message.image) parts.push({ ...message, text: "", quickReplies: [], image: message.image });
  if (parts.length <= 1) return [message];
  return parts.map((part, i) => finish({ ...part, id: message.id ? `${message.id}#${i}` : null }));
}

// A tracker `bot` event; agent and system turns carry metadata.handoff {role, agent, body, event, message_sid, timestamp}.
function fromTrackerBotEvent(entry) {
  const data = entry.data || {};
  const meta = (entry.metadata && entry.metadata.handoff) || {};
  const payload = { ...data, text: entry.text, timestamp: entry.timestamp };
  if (meta.role === "agent" || meta.role === "system") {
    const agent = meta.agent && typeof meta.agent === "object" ? meta.agent : { name: meta.agent };
    payload.metadata = { handoff: { ...meta, sender: meta.role, agent } };
  }
  return fromBotPayload(payload, toMillis(entry.timestamp) || Date.now());
}

function visitorFromHistory(entry) {
  const attachment = attachmentOf(handoffOf(entry).attachment);
  const text = asText(entry.text || entry.message) || (attachment ? attachment.filename : "");
  if (!text) return null;
  return finish({
    id: asText(entry.message_sid || entry.id || entry.message_id || "") || null,
    sender: "visitor",
    text,
    payload: text,
    timestamp: toMillis(entry.timestamp) || Date.now(),
    quickReplies: [],
    attachment,
  });
}

/**
 * A file the visitor is sending, shown at once (from the local file: `localUrl`, an object URL for
 * an image preview) while it uploads. Its text is the file name, as the server records the turn.
 */
export function visitorAttachment(file, relayId, localUrl = null) {
  const contentType = asText(file.type).toLowerCase();
  return finish({
    id: null,
    sender: "visitor",
    text: file.name,
    payload: file.name,
    timestamp: Date.now(),
    quickReplies: [],
    attachment: {
      url: null,
      localUrl,
      filename: file.name,
      contentType,
      size: file.size,
      kind: IMAGE_KINDS.includes(contentType) ? "image" : "file",
    },
    upload: { state: "uploading", relayId, error: "", retryable: false },
    pending: true,
  });
}

/** What the visitor just sent; `label` is what they saw (a button title) when it differs. */
export function visitorMessage(payload, label) {
  return finish({
    id: null,
    sender: "visitor",
    text: label || payload,
    payload,
    timestamp: Date.now(),
    quickReplies: [],
    pending: true,
  });
}

/** Rewrite visitor payloads (e.g. "/talk_to_agent") from history into the button titles the visitor saw. */
export function labelPayloads(messages, knownLabels) {
  const labels = new Map(Object.entries(knownLabels));
  for (const message of messages) {
    for (const reply of message.quickReplies || []) labels.set(reply.payload, replyLabel(message, reply));
    if (message.sender === "visitor" && message.text === message.payload && labels.has(message.payload)) {
      message.text = labels.get(message.payload);
    }
  }
  return messages;
}
