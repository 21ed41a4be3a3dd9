// One message in the log: bot, visitor, agent and system messages each get their own look.

import { clockTime, el, initials, linkified } from "./dom.js";
import { icon } from "./icons.js";

const GROUP_WINDOW_MS = 2 * 60 * 1000;

const SYSTEM_ICONS = {
  connecting: "agent",
  agent_joined: "agent",
  agent_left: "end",
  chat_closed: "end",
  visitor_left: "end",
  bot_resumed: "bot",
  relay_failed: "offline",
};

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

function systemElement(message, actions) {
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
  return el("div", { className: "hw-quick-replies", role: "group", "aria-label": "Suggested replies" }, buttons);
}

/** A new element for `message`; `actions` has onQuickReply(reply) and onDownload(). */
export function messageElement(message, { botName, actions }) {
  if (message.sender === "system") return systemElement(message, actions);

  const author = authorName(message, botName);
  const label = message.sender === "agent" ? [author, el("span", { className: "hw-role", text: "Agent" })] : [author];
  const bubble = el("div", { className: "hw-bubble" });
  if (message.text) bubble.append(linkified(message.text));
  if (message.image) {
    bubble.append(el("img", { className: "hw-image", src: message.image.src, alt: message.image.alt, loading: "lazy" }));
  }
  const body = el("div", { className: "hw-msg__body" }, [
    el("div", { className: "hw-author" }, label),
    bubble,
    el("div", { className: "hw-meta" }, [timeElement(message), el("span", { className: "hw-status", text: "" })]),
    quickReplies(message, actions),
  ]);
  return el("div", { className: `hw-msg hw-msg--${message.sender}`, "data-sender": message.sender }, [avatar(message), body]);
}

/** Refresh the parts of a message element that change after it is shown. */
export function updateMessageElement(row, message, previous, isLast) {
  const continued = Boolean(
    previous && previous.sender === message.sender && message.sender !== "system" &&
      previous.agentName === message.agentName && message.timestamp - previous.timestamp < GROUP_WINDOW_MS,
  );
  row.classList.toggle("hw-msg--continued", continued);
  row.classList.toggle("hw-msg--pending", Boolean(message.pending));
  const status = row.querySelector(".hw-status");
  if (status) status.textContent = message.pending ? "Sending…" : "";
  const replies = row.querySelector(".hw-quick-replies");
  if (replies) replies.hidden = !isLast;
}
