// One message in the log: bot, visitor, agent and system messages each get their own look.

import { asksForInput, ratingScale } from "./after-chat.js";
import { commentForm, emailForm, starRating } from "./after-chat-view.js";
import { attachmentElement, namesOnlyTheFile, renderUpload } from "./attachment-view.js";
import { clockTime, el, initials, linkified } from "./dom.js";
import { icon } from "./icons.js";
import { noticeHeading } from "./status.js";

const GROUP_WINDOW_MS = 2 * 60 * 1000;

const SYSTEM_ICONS = {
  connecting: "agent",
  agent_joined: "agent",
  agent_left: "end",
  chat_closed: "end",
  visitor_left: "end",
  bot_resumed: "bot",
  relay_failed: "offline",
  too_fast: "offline",
  queue: "clock",
  transferring: "transfer",
  stay: "bot",
  unavailable: "clock",
  not_accepted: "agent",
  message_left: "check",
  survey_thanks: "check",
  transcript_sent: "message",
  transcript_failed: "alert",
};

// Notices that change what the visitor can do, or answer what they asked for, stand out as cards with a heading.
const CARD_EVENTS = ["unavailable", "not_accepted", "message_left", "survey_thanks", "transcript_sent", "transcript_failed"];
// Notices worded as the assistant asking something read like the assistant.
const ASKING_EVENTS = ["offer", "leave_message", "survey", "survey_comment", "transcript_offer", "transcript_email"];

function authorName(message, botName) {
  if (message.sender === "visitor") return "You";
  if (message.sender === "agent") return message.agentName || "Agent";
  return botName;
}

function avatar(message) {
  if (message.sender === "agent") {
    return el("span", { className: "hw-avatar hw-avatar--agent", "aria-hidden": "true", text: initials(message.agentName) });
  }
  if (message.sender === "bot") return el("span", { className: "hw-avatar hw-avatar--bot", "aria-hidden": "true" }, icon("bot"));
  return null;
}

function timeElement(message) {
  const date = new Date(message.timestamp);
  return el("time", { className: "hw-time", datetime: date.toISOString(), title: date.toLocaleString(), text: clockTime(message.timestamp) });
}

function noticeCard(message) {
  const kind = message.event === "unavailable" ? `unavailable-${message.reason || "no_agents"}` : message.event;
  return el("div", {
    className: `hw-msg hw-msg--system hw-msg--card hw-system--${message.event}`,
    "data-sender": "system",
    "data-event": message.event,
  }, el("div", { className: `hw-card hw-card--${kind}`, role: "note" }, [
    el("span", { className: "hw-card__icon", "aria-hidden": "true" }, icon(SYSTEM_ICONS[message.event] || "chat")),
    el("div", { className: "hw-card__body" }, [
      el("strong", { className: "hw-card__title", text: noticeHeading(message) }),
      el("span", { className: "hw-system__text", text: message.text }),
      timeElement(message),
    ]),
  ]));
}

function systemElement(message, actions) {
  if (CARD_EVENTS.includes(message.event)) return noticeCard(message);
  const children = [
    icon(SYSTEM_ICONS[message.event] || "chat", "hw-icon hw-system__icon"),
    el("span", { className: "hw-system__text", text: message.text }),
    timeElement(message),
  ];
  const row = el("div", {
    className: `hw-msg hw-msg--system hw-system--${message.event || "notice"}`,
    "data-sender": "system",
    "data-event": message.event || "",
  }, el("div", { className: "hw-system" }, children));
  if (message.event === "chat_closed") {
    row.append(el("button", { type: "button", className: "hw-link-button hw-transcript-link", onclick: actions.onDownload }, [
      icon("download"),
      "Download transcript",
    ]));
  }
  return row;
}

function quickReplies(message, actions) {
  if (!message.quickReplies.length) return null;
  const buttons = message.quickReplies.map((reply) =>
    el("button", { type: "button", className: "hw-quick-reply", onclick: () => actions.onQuickReply(reply) }, reply.title),
  );
  return el("div", { className: "hw-quick-replies hw-interactive", role: "group", "aria-label": "Suggested replies" }, buttons);
}

/** What the visitor can answer with: the survey's stars, a comment or email box, else the buttons. */
function answers(message, actions) {
  if (message.sender === "system") {
    const scale = message.event === "survey" ? ratingScale(message.quickReplies) : null;
    if (scale) return starRating(scale, actions);
    if (message.event === "survey_comment") return commentForm(message, actions);
    if (message.event === "transcript_email") return emailForm(message, actions, actions.knownEmail());
  }
  return quickReplies(message, actions);
}

function bubbleContent(bubble, message) {
  const { attachment } = message;
  if (message.text && !(attachment && namesOnlyTheFile(message.text, attachment))) bubble.append(linkified(message.text));
  if (attachment) {
    bubble.classList.add("hw-bubble--file");
    bubble.append(attachmentElement(attachment));
  }
  if (message.image) {
    bubble.append(el("a", {
      className: "hw-image-link", href: message.image.src, target: "_blank", rel: "noopener noreferrer", title: "Open the image in a new tab",
    }, el("img", { className: "hw-image", src: message.image.src, alt: message.image.alt, loading: "lazy" })));
  }
}

/**
 * A new element for `message`; `actions` has onQuickReply(reply), onSendText(text), onDownload(),
 * onRetryUpload(message), onRemoveUpload(message) and knownEmail().
 */
export function messageElement(message, { botName, actions }) {
  const asking = message.sender === "system" &&
    (ASKING_EVENTS.includes(message.event) || message.quickReplies.length > 0 || asksForInput(message));
  if (message.sender === "system" && !asking) return systemElement(message, actions);

  const author = authorName(message, botName);
  const label = message.sender === "agent" ? [author, el("span", { className: "hw-role", text: "Agent" })] : [author];
  const bubble = el("div", { className: "hw-bubble" });
  bubbleContent(bubble, message);
  const upload = message.upload ? el("div", { className: "hw-upload", "aria-live": "polite" }) : null;
  if (upload) renderUpload(upload, message, actions);
  const body = el("div", { className: "hw-msg__body" }, [
    el("div", { className: "hw-author" }, label),
    bubble,
    upload,
    el("div", { className: "hw-meta" }, [timeElement(message), el("span", { className: "hw-status", text: "" })]),
    answers(message, actions),
  ]);
  // A question from the handoff (the offer...) is the assistant's, marked with its event for styling and tests.
  const look = asking ? "bot" : message.sender;
  return el("div", {
    className: `hw-msg hw-msg--${look}${asking ? ` hw-msg--asking hw-system--${message.event}` : ""}`,
    "data-sender": message.sender,
    "data-event": asking ? message.event : null,
  }, [avatar({ ...message, sender: look }), body]);
}

/**
 * Refresh the parts of a message element that change after it is shown: pending, a file's upload
 * state, whether its buttons or boxes still apply (a folded queue notice: its text too).
 */
export function updateMessageElement(row, message, previous, repliesActive, actions) {
  const continued = Boolean(
    previous && previous.sender === message.sender && message.sender !== "system" &&
      previous.agentName === message.agentName && message.timestamp - previous.timestamp < GROUP_WINDOW_MS,
  );
  row.classList.toggle("hw-msg--continued", continued);
  row.classList.toggle("hw-msg--pending", Boolean(message.pending));
  const status = row.querySelector(".hw-status");
  if (status) status.textContent = message.pending && !message.upload ? "Sending…" : "";
  const upload = row.querySelector(".hw-upload");
  if (upload) renderUpload(upload, message, actions);
  const answering = row.querySelector(".hw-interactive");
  if (answering) answering.hidden = !repliesActive;
  if (message.sender === "system" && row.dataset.event === "queue") {
    const text = row.querySelector(".hw-system__text");
    if (text && text.textContent !== message.text) text.textContent = message.text;
    const time = row.querySelector(".hw-time");
    if (time && time.getAttribute("datetime") !== new Date(message.timestamp).toISOString()) time.replaceWith(timeElement(message));
  }
}
