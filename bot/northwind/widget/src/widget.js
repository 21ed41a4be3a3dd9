// The widget controller: connects the Rasa connection, the conversation model and the view.

import { checkFiles, newRelayId, previewable, uploadUrl } from "./attachments.js";
import { historyUrlFor } from "./config.js";
import { Conversation } from "./conversation.js";
import { RasaConnection } from "./connection.js";
import { fetchHistory } from "./history.js";
import { fromBotPayload, fromHistoryEntry, labelPayloads, visitorAttachment, visitorMessage } from "./messages.js";
import { downloadText, transcriptFilename, transcriptText } from "./transcript.js";
import { uploadFile } from "./upload.js";
import { WidgetView } from "./view.js";
import { customerOf, PreEngagement, preEngagementFields } from "./visitor-details.js";
import { pickStorage, VisitorSession } from "./visitor-session.js";
import { VisitorTyping } from "./visitor-typing.js";

const BOT_TYPING_MS = 8000;
const AGENT_TYPING_MS = 15000;

export class HandoffWidget {
  constructor(config) {
    this.config = config;
    this.session = new VisitorSession(pickStorage(config.storage), config.storageKey);
    // Who the visitor is: the page's signed-in customer, else (optionally) what they tell the form, per tab.
    this.customer = customerOf(config.customer);
    this.detailFields = this.customer ? [] : preEngagementFields(config.preEngagement);
    this.preEngagement = new PreEngagement(pickStorage(config.storage === "memory" ? "memory" : "session"), config.storageKey);
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
      onQuickReply: (reply) =>
        this.isAgentRequest(reply.payload) ? this.requestAgent(reply.payload, reply.title) : this.send(reply.payload, reply.title),
      onTalkToAgent: () => this.requestAgent(config.talkToAgentPayload, "Talk to an agent"),
      onEndChat: () => this.send(config.endChatPayload, "End chat"),
      onToggle: (open) => this.setOpen(open),
      onInput: (hasText) => this.visitorTyping.keystroke(hasText),
      onDownload: () => this.downloadTranscript(),
      onFiles: (files) => this.attach(files),
      onRetryUpload: (message) => this.upload(message),
      onRemoveUpload: (message) => this.removeUpload(message),
      onEditDetails: () => this.editDetails(),
      knownEmail: () => (this.customer && this.customer.email) || (this.preEngagement.details || {}).email || "",
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
        metadata: () => this.messageMetadata(), authToken: config.authToken ? () => this.authToken() : null },
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
    const history = await fetchHistory(historyUrlFor(this.config, sessionId), { token: await this.authToken() });
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

  /** The page's bearer token (`authToken`: a string, or a function returning one or a promise of one); "" without. */
  async authToken() {
    const option = this.config.authToken;
    try {
      const token = typeof option === "function" ? await option() : option;
      return typeof token === "string" ? token.trim() : "";
    } catch (error) {
      console.error(error); // eslint-disable-line no-console
      return "";
    }
  }

  /**
   * What goes with every message as `metadata`: the page's own `metadata`, the known `customer`
   * (`metadata.customer` {name, email, customer_id}) or else the visitor's pre-engagement answers
   * (`metadata.pre_engagement` {name, email}).
   */
  messageMetadata() {
    const metadata = { ...(this.config.metadata || {}) };
    if (this.customer) metadata.customer = { ...this.customer };
    const details = this.detailFields.length ? this.preEngagement.details : null;
    if (details) metadata.pre_engagement = details;
    return Object.keys(metadata).length ? metadata : null;
  }

  isAgentRequest(payload) {
    const request = this.config.talkToAgentPayload;
    return Boolean(request) && (payload === request || String(payload).startsWith(`${request}{`));
  }

  /** Whether to ask for the visitor's details first: the form is on, nobody is known, not yet answered in this tab. */
  asksForDetails() {
    return this.detailFields.length > 0 && !this.preEngagement.answered && this.conversation.handoff.state === "bot";
  }

  /** The visitor asks for a person (the button, or a bot button asking for one): the form first, the first time. */
  requestAgent(payload, label) {
    if (!this.asksForDetails()) {
      this.send(payload, label);
      return;
    }
    const go = () => {
      this.view.hideDetailsForm();
      this.render();
      this.send(payload, label);
    };
    this.view.showDetailsForm({
      mode: "request",
      fields: this.detailFields,
      values: {},
      onSubmit: (details) => {
        this.preEngagement.save(details);
        this.emit("details", { details });
        go();
      },
      onOther: () => {
        this.preEngagement.skip();
        go();
      },
    });
  }

  /** The header's "Your details": change (or give) the answers; Cancel leaves them as they were. */
  editDetails() {
    const close = () => {
      this.view.hideDetailsForm();
      this.render();
    };
    this.view.showDetailsForm({
      mode: "edit",
      fields: this.detailFields,
      values: this.preEngagement.details || {},
      onSubmit: (details) => {
        this.preEngagement.save(details);
        this.emit("details", { details });
        close();
      },
      onOther: close,
    });
  }

  /** Files chosen, dropped or pasted: checked against the chat's limits, then the one file is uploaded. */
  attach(files) {
    const limits = this.conversation.handoff.attachments;
    if (!limits) return;
    const problem = checkFiles(files, limits);
    if (problem) {
      this.view.showComposerError(problem.error);
      this.emit("upload", { state: "refused", code: problem.code });
      return;
    }
    this.view.clearComposerError();
    const [file] = files;
    const message = visitorAttachment(file, newRelayId(), previewable(file.type) ? URL.createObjectURL(file) : null);
    message.upload.file = file;
    message.upload.url = uploadUrl(this.config.serverUrl, limits.uploadPath, this.sessionId);
    this.conversation.add(message);
    this.visitorTyping.stop();
    this.render({ forceScroll: true });
    this.upload(message);
  }

  /** Posts (or posts again, with the same relay id) a file the visitor sends. */
  async upload(message) {
    const upload = message.upload;
    if (!upload || !upload.file || upload.state === "sent") return;
    upload.state = "uploading";
    upload.error = "";
    message.pending = true;
    this.render();
    const result = await uploadFile({ url: upload.url, file: upload.file, relayId: upload.relayId, token: await this.authToken() });
    message.pending = false;
    if (result.ok) {
      message.upload = { state: "sent", relayId: upload.relayId, error: "", retryable: false };
      this.confirmUpload(message, result.message);
    } else {
      Object.assign(upload, { state: "failed", error: result.error, retryable: result.retryable, status: result.status, code: result.code });
    }
    this.render();
    this.emit("upload", { state: message.upload.state, code: result.ok ? "" : result.code, filename: message.attachment.filename });
  }

  /**
   * The turn as the server recorded it (its name for the file, its time), so the history's copy
   * is recognised as this one; the preview stays the local file's.
   */
  confirmUpload(message, recorded) {
    const confirmed = recorded && typeof recorded === "object" ? fromHistoryEntry({ ...recorded, sender: "visitor" }) : null;
    if (!confirmed || !confirmed.attachment) return;
    if (confirmed.text !== message.text) message.key = `${message.key}-confirmed`; // shown anew with the server's name
    message.text = message.payload = confirmed.text;
    message.attachment = { ...message.attachment, ...confirmed.attachment, localUrl: message.attachment.localUrl };
    if (recorded.timestamp) message.timestamp = confirmed.timestamp;
  }

  removeUpload(message) {
    if (message.attachment && message.attachment.localUrl) URL.revokeObjectURL(message.attachment.localUrl);
    this.conversation.remove(message);
    this.render();
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
    const handoff = this.conversation.handoff;
    this.view.setHandoff(handoff);
    this.view.setDetailsOffer(this.detailFields.length > 0 && handoff.state === "bot");
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
