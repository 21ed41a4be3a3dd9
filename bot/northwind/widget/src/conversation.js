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
  // A file's link is made anew each time it is shown (it expires): a file is the same by its name.
  if (Boolean(a.attachment) !== Boolean(b.attachment)) return false;
  if (a.attachment) {
    if (a.attachment.filename !== b.attachment.filename) return false;
  } else if ((a.image && a.image.src) !== (b.image && b.image.src)) return false;
  if (a.sender === "system" && a.event !== b.event) return false;
  return Math.abs(a.timestamp - b.timestamp) <= MATCH_WINDOW_MS;
}

// Notices that say where the visitor stands until they (or the bot) say something else.
const NOTICE_PHASES = ["unavailable", "not_accepted", "leave_message", "message_left"];

/**
 * Handoff state after these messages:
 * - `state`: "bot" (talking to the assistant), "waiting" (asked for an agent, none accepted yet),
 *   "agent" (an agent is in the chat) or "ended" (the agent chat just closed);
 * - `phase`, what the visitor is shown: "bot", "connecting", "queued", "transferring" (waiting),
 *   "agent", "ended", "unavailable" (with `reason` "closed" | "no_agents"), "not_accepted",
 *   "leave_message" (the next message is for the team), "message_left";
 * - `agentName` (with an agent), `queue` {position, etaSeconds} (queued), `transferringAgent`;
 * - `attachments`: the file limits the agent chat's `connecting` notice offered, while that chat
 *   is open (waiting for or with an agent); null otherwise or when none were offered.
 */
export function handoffState(messages) {
  let state = "bot";
  let phase = "bot";
  let agentName = "";
  let queue = null;
  let reason = "";
  let transferringAgent = "";
  let attachments = null;
  const toBot = (next) => {
    state = "bot";
    phase = next;
    agentName = "";
    queue = null;
  };
  for (const message of messages) {
    if (message.sender === "agent") {
      state = phase = "agent";
      agentName = message.agentName || agentName;
      queue = null;
    } else if (message.sender === "bot") {
      if (state === "bot" && NOTICE_PHASES.includes(phase)) phase = "bot"; // the bot has moved on
    } else if (message.sender === "visitor") {
      // Picking an option (or typing anything else) after a notice leaves it; a message being left stays so.
      if (state === "bot" && NOTICE_PHASES.includes(phase) && phase !== "leave_message") phase = "bot";
    } else if (message.sender === "system") {
      switch (message.event) {
        case "connecting":
          state = "waiting";
          phase = "connecting";
          queue = null;
          attachments = message.attachments || null; // each agent chat says its own
          break;
        case "queue":
          state = "waiting";
          phase = "queued";
          agentName = "";
          queue = message.queue || { position: null, etaSeconds: null };
          break;
        case "transferring":
          state = "waiting";
          phase = "transferring";
          transferringAgent = message.agentName || agentName;
          agentName = "";
          queue = null;
          break;
        case "agent_joined":
          state = phase = "agent";
          agentName = message.agentName || agentName;
          queue = null;
          break;
        case "agent_left":
          // The chat stays open (else chat_closed follows): Flex routes it to another agent.
          state = "waiting";
          phase = "transferring";
          transferringAgent = "";
          agentName = "";
          queue = null;
          break;
        case "chat_closed":
        case "visitor_left":
          state = phase = "ended";
          queue = null;
          break;
        case "bot_resumed":
          // After "nobody could take the chat" the offer still stands: keep saying so.
          toBot(phase === "not_accepted" || phase === "unavailable" ? phase : "bot");
          break;
        case "unavailable":
          toBot("unavailable");
          reason = message.reason || "";
          break;
        case "not_accepted":
          toBot("not_accepted");
          break;
        case "leave_message":
        case "message_left":
          toBot(message.event);
          break;
        case "stay":
          toBot("bot");
          break;
        default:
          break; // offer, relay_failed, too_fast and others are notices only
      }
    }
  }
  return {
    state,
    phase,
    agentName: state === "agent" ? agentName : "",
    queue: phase === "queued" ? queue : null,
    reason: phase === "unavailable" ? reason : "",
    transferringAgent: phase === "transferring" ? transferringAgent : "",
    attachments: state === "waiting" || state === "agent" ? attachments : null,
  };
}

/**
 * The messages as the log shows them: a run of queue notices (visitor messages may come in
 * between) is one notice, in the first one's place, that reads like the latest.
 */
export function displayed(messages) {
  const shown = [];
  let queueAt = -1;
  for (const message of messages) {
    if (message.sender === "system" && message.event === "queue") {
      if (queueAt >= 0) {
        shown[queueAt] = { ...message, key: shown[queueAt].key };
        continue;
      }
      queueAt = shown.length;
    } else if (message.sender !== "visitor") {
      queueAt = -1;
    }
    shown.push(message);
  }
  return shown;
}

export class Conversation {
  constructor() {
    this.messages = [];
  }

  /** What the log shows (repeated queue notices folded into one). */
  get visible() {
    return displayed(this.messages);
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

  /** Takes a message off the log (a file the visitor gave up sending). */
  remove(message) {
    this.messages = this.messages.filter((m) => m !== message);
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
