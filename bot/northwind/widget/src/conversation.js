// The conversation as the visitor sees it: ordered messages, merged from live events and history,
// and the handoff state that follows from them.

const MATCH_WINDOW_MS = 15 * 60 * 1000;

function comparableText(message) {
  return message.sender === "visitor" ? message.payload || message.text : message.text;
}

/** Whether a message shown live and an entry from history are the same message. */
export function sameMessage(a, b) {
  if (a.sender !== b.sender) return false;
  if (a.id && b.id) return a.id === b.id;
  if (comparableText(a) !== comparableText(b)) return false;
  if ((a.image && a.image.src) !== (b.image && b.image.src)) return false;
  if (a.sender === "system" && a.event !== b.event) return false;
  return Math.abs(a.timestamp - b.timestamp) <= MATCH_WINDOW_MS;
}

/**
 * Handoff state after these messages:
 * "bot" (talking to the assistant), "waiting" (asked for an agent, none accepted yet),
 * "agent" (an agent is in the chat) or "ended" (the agent chat just closed).
 */
export function handoffState(messages) {
  let state = "bot";
  let agentName = "";
  for (const message of messages) {
    if (message.sender === "agent") {
      state = "agent";
      agentName = message.agentName || agentName;
    } else if (message.sender === "system") {
      switch (message.event) {
        case "connecting":
          state = "waiting";
          break;
        case "agent_joined":
          state = "agent";
          agentName = message.agentName || agentName;
          break;
        case "agent_left":
        case "chat_closed":
        case "visitor_left":
          state = "ended";
          break;
        case "bot_resumed":
          state = "bot";
          agentName = "";
          break;
        default:
          break; // relay_failed and others are notices only
      }
    }
  }
  return { state, agentName: state === "agent" ? agentName : "" };
}

export class Conversation {
  constructor() {
    this.messages = [];
  }

  get visible() {
    return this.messages;
  }

  get isEmpty() {
    return this.messages.length === 0;
  }

  get handoff() {
    return handoffState(this.messages);
  }

  /** Adds a live message unless it is already there (same id); returns whether it was added. */
  add(message) {
    if (message.id && this.messages.some((m) => m.id === message.id && m.sender === message.sender)) return false;
    this.messages.push(message);
    return true;
  }

  markSent(message) {
    message.pending = false;
  }

  /**
   * Merge the server's history (authoritative order) with what is on screen: messages already
   * shown keep their place and take the server id; missed ones are filled in; messages the
   * server does not know yet (still sending) stay at the end. Returns the newly added messages.
   */
  mergeHistory(history) {
    const unmatched = [...this.messages];
    const merged = [];
    const added = [];
    for (const entry of history) {
      const index = unmatched.findIndex((local) => sameMessage(local, entry));
      if (index >= 0) {
        const [local] = unmatched.splice(index, 1);
        if (!local.id && entry.id) local.id = entry.id;
        local.pending = false;
        merged.push(local);
      } else {
        merged.push(entry);
        added.push(entry);
      }
    }
    for (const local of unmatched) {
      const at = merged.findIndex((m) => m.timestamp > local.timestamp);
      if (at === -1 || local.pending) merged.push(local);
      else merged.splice(at, 0, local);
    }
    this.messages = merged;
    return added;
  }
}
