// What the header and the status panel say for a handoff state (pure: no DOM, unit-tested).

/** "about 3 min" for an expected wait in seconds; "" when unknown. */
export function waitText(etaSeconds) {
  if (etaSeconds === null || etaSeconds === undefined || !isFinite(etaSeconds) || etaSeconds < 0) return "";
  return `about ${Math.max(1, Math.round(etaSeconds / 60))} min`;
}

/** "You are number 2 in line · about 3 min" (either part may be unknown). */
export function queueText(queue) {
  const parts = [];
  if (queue && queue.position !== null && queue.position !== undefined) {
    parts.push(`You are number ${queue.position} in line`);
  }
  const wait = waitText(queue && queue.etaSeconds);
  if (wait) parts.push(wait);
  return parts.length ? parts.join(" · ") : "Waiting for the next free agent…";
}

/**
 * The status panel under the header, or null for none:
 * {kind, title, detail, busy (spinner), cancel (offers to stop waiting)}.
 */
export function statusPanel(handoff) {
  switch (handoff.phase) {
    case "connecting":
      return {
        kind: "waiting", busy: true, cancel: true,
        title: "Connecting you to an agent…", detail: "Please stay on this page. You can keep typing meanwhile.",
      };
    case "queued":
      return {
        kind: "waiting", busy: true, cancel: true,
        title: queueText(handoff.queue), detail: "Please stay on this page. You can keep typing meanwhile.",
      };
    case "transferring":
      return {
        kind: "waiting", busy: true, cancel: true,
        title: handoff.transferringAgent ? `${handoff.transferringAgent} is transferring you…` : "Waiting for another agent…",
        detail: "Please stay on this page: another agent will join you shortly.",
      };
    case "leave_message":
      return {
        kind: "prompt", busy: false, cancel: false,
        title: "Leave a message for our team", detail: "Type it below and press Enter: we'll get back to you.",
      };
    default:
      return null;
  }
}

/** The line under the title in the header. */
export function subtitleText(handoff, { online = true, fallback = "" } = {}) {
  if (!online) return "Reconnecting…";
  switch (handoff.phase) {
    case "connecting":
    case "queued":
      return "Waiting for an agent…";
    case "transferring":
      return "Being transferred…";
    case "agent":
      return `You're chatting with ${handoff.agentName || "an agent"}`;
    case "unavailable":
      return handoff.reason === "closed" ? "We're closed right now" : "No agents available right now";
    case "not_accepted":
      return "No agent could take the chat";
    case "leave_message":
      return "Leaving a message for our team";
    case "message_left":
      return "Message sent: we'll get back to you";
    default:
      return fallback;
  }
}

/** The status dot's look: "bot", "waiting", "agent", "away" (no agent to be had) or "offline". */
export function dotKind(handoff, online = true) {
  if (!online) return "offline";
  if (handoff.phase === "unavailable" || handoff.phase === "not_accepted") return "away";
  return handoff.state;
}

/** Headings of the notices that stand out in the log as cards. */
export function noticeHeading(message) {
  switch (message.event) {
    case "unavailable":
      return message.reason === "closed" ? "We're closed right now" : "No agents available";
    case "not_accepted":
      return "Nobody could take the chat";
    case "message_left":
      return "Message sent";
    case "survey_thanks":
      return "Thanks for your feedback";
    case "transcript_sent":
      return "Transcript sent";
    case "transcript_failed":
      return "Transcript not sent";
    default:
      return "";
  }
}
