// The widget controller: connects the Rasa connection, the conversation model and the view.

import { historyUrlFor } from "./config.js";
import { Conversation } from "./conversation.js";
import { RasaConnection } from "./connection.js";
import { fetchHistory } from "./history.js";
import { fromBotPayload, labelPayloads, visitorMessage } from "./messages.js";
import { downloadText, transcriptFilename, transcriptText } from "./transcript.js";
import { WidgetView } from "./view.js";
import { pickStorage, VisitorSession } from "./visitor-session.js";
import { VisitorTyping } from "./visitor-typing.js";

const BOT_TYPING_MS = 8000;
const AGENT_TYPING_MS = 15000;

export class HandoffWidget {
  constructor(config) {
    this.config = config;
    this.session = new VisitorSession(pickStorage(config.storage), config.storageKey);
    this.conversation = new Conversation();
    this.outbox = []; // visitor messages waiting for a confirmed session
    this.unread = 0;
    this.historyLoaded = false;
    this.typingTimer = null;
    this.listeners = {};
  }

  start() {
    const { config } = this;
    this.view = new WidgetView(config, {
      onSend: (text) => this.send(text),
      onQuickReply: (reply) => this.send(reply.payload, reply.title),
      onTalkToAgent: () => this.send(config.talkToAgentPayload, "Talk to an agent"),
      onEndChat: () => this.send(config.endChatPayload, "End chat"),
      onToggle: (open) => this.setOpen(open),
      onInput: (hasText) => this.visitorTyping.keystroke(hasText),
      onDownload: () => this.downloadTranscript(),
    });
    this.view.mount(config.container || document.body);
    this.visitorTyping = new VisitorTyping((typing) => {
      const state = this.conversation.handoff.state;
      if (state === "waiting" || state === "agent") this.connection.setTyping(typing);
    }, config.typingIdleMs);

    const remembered = this.session.open;
    this.setOpen(remembered === null ? Boolean(config.open) : remembered, { focus: false, animate: false });
    this.render();

    this.connection = new RasaConnection(
      { serverUrl: config.serverUrl, socketPath: config.socketPath, transports: config.transports, sessionId: this.session.id,
        metadata: config.metadata },
      {
        onConfirm: (sessionId, isReconnect) => this.onConfirm(sessionId, isReconnect),
        onBotUttered: (data) => this.receive(data),
        onAgentTyping: (data) => this.onAgentTyping(data),
        onOffline: () => this.goOffline(),
        onConnectError: () => this.goOffline(),
      },
    );
    // Show what we already know while the socket connects.
    if (this.session.id) this.syncHistory();
    this.connection.start();
    return this;
  }

  on(event, callback) {
    (this.listeners[event] = this.listeners[event] || []).push(callback);
    return this;
  }

  emit(event, detail) {
    for (const callback of this.listeners[event] || []) {
      try {
        callback(detail);
      } catch (error) {
        console.error(error); // eslint-disable-line no-console
      }
    }
  }

  get sessionId() {
    return this.connection ? this.connection.sessionId : this.session.id;
  }

  async onConfirm(sessionId, isReconnect) {
    const changed = this.session.id !== sessionId;
    this.session.id = sessionId;
    if (isReconnect || !this.view.online) this.view.setConnectivity("restored");
    if (changed) this.historyLoaded = false;
    this.flushOutbox();
    await this.syncHistory();
    if (this.config.initPayload && this.conversation.isEmpty && !this.session.initSent) {
      this.session.markInitSent();
      this.connection.sendText(this.config.initPayload);
    }
    this.emit("session", { sessionId, isReconnect });
  }

  goOffline() {
    // connect_error repeats on every reconnection attempt: announce the loss once.
    if (this.view.online) this.view.setConnectivity("offline");
  }

  async syncHistory() {
    const sessionId = this.session.id;
    const history = await fetchHistory(historyUrlFor(this.config, sessionId));
    if (!history || sessionId !== this.session.id) return;
    labelPayloads(history, this.knownLabels());
    const added = this.conversation.mergeHistory(history);
    if (this.historyLoaded && !this.view.open) {
      this.addUnread(added.filter((m) => m.sender !== "visitor").length);
    }
    this.historyLoaded = true;
    this.render({ forceScroll: true });
    this.emit("history", { count: history.length, added: added.length });
  }

  knownLabels() {
    return { [this.config.talkToAgentPayload]: "Talk to an agent", [this.config.endChatPayload]: "End chat" };
  }

  send(payload, label) {
    const text = String(payload || "").trim();
    if (!text) return;
    const message = visitorMessage(text, label && label !== text ? label : undefined);
    this.conversation.add(message);
    this.visitorTyping.stop();
    if (this.connection.ready) this.deliver(message);
    else this.outbox.push(message);
    if (this.conversation.handoff.state === "bot") this.showTypingFor("bot");
    this.render({ forceScroll: true });
    this.emit("sent", { text, label });
  }

  deliver(message) {
    this.connection.sendText(message.payload);
    this.conversation.markSent(message);
  }

  flushOutbox() {
    const queued = this.outbox.splice(0);
    for (const message of queued) this.deliver(message);
    if (queued.length) this.render();
  }

  receive(data) {
    const message = fromBotPayload(data);
    if (!message) return;
    const shown = this.conversation.visible.length;
    if (!this.conversation.add(message)) return;
    this.showTypingFor(null); // whoever was typing has answered (or the chat moved on)
    // A queue update refreshes the notice already shown: nothing new to read.
    if (!this.view.open && this.conversation.visible.length > shown) this.addUnread(1);
    this.render();
    this.emit("message", message);
  }

  onAgentTyping(data) {
    const agent = data.agent;
    const name = (agent && typeof agent === "object" ? agent.name : agent) || this.conversation.handoff.agentName || "The agent";
    this.showTypingFor(data.typing === false ? null : "agent", name);
  }

  showTypingFor(who, name) {
    clearTimeout(this.typingTimer);
    if (!who) {
      this.view.showTyping(null);
      return;
    }
    this.view.showTyping(who === "agent" ? `${name} is typing…` : `${this.config.botName} is typing…`);
    this.typingTimer = setTimeout(() => this.view.showTyping(null), who === "agent" ? AGENT_TYPING_MS : BOT_TYPING_MS);
  }

  addUnread(count) {
    if (count <= 0) return;
    this.unread += count;
    this.view.setUnread(this.unread);
  }

  setOpen(open, { focus = true, animate = true } = {}) {
    this.session.open = open;
    this.view.setOpen(open, { focus, animate });
    if (open) {
      this.unread = 0;
      this.view.setUnread(0);
    }
  }

  render({ forceScroll = false } = {}) {
    // Banners (waiting...) change the log's height: measure "at the bottom" before they do.
    const stickToBottom = forceScroll || this.view.isNearBottom();
    this.view.setHandoff(this.conversation.handoff);
    this.view.renderMessages(this.conversation.visible, { forceScroll: stickToBottom });
  }

  transcript() {
    return transcriptText(this.conversation.visible, { title: this.config.title, botName: this.config.botName });
  }

  downloadTranscript() {
    downloadText(this.transcript(), transcriptFilename());
  }

  open() {
    this.setOpen(true);
  }

  close() {
    this.setOpen(false);
  }
}
