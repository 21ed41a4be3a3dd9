// The widget's DOM: a launcher button and a chat panel inside a Shadow DOM, isolated from the page.

import css from "./styles.css";
import { asksForInput } from "./after-chat.js";
import { limitsText } from "./attachments.js";
import { el, initials } from "./dom.js";
import { icon } from "./icons.js";
import { messageElement, updateMessageElement } from "./message-view.js";
import { preEngagementForm } from "./pre-engagement-view.js";
import { dotKind, statusPanel, subtitleText } from "./status.js";

const NEAR_BOTTOM_PX = 120;

function cssVariables(colors) {
  return Object.entries(colors)
    .filter(([, value]) => value)
    .map(([name, value]) => `--hw-${name.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}: ${String(value).replace(/[;{}<>]/g, "")};`)
    .join(" ");
}

export class WidgetView {
  /**
   * @param {object} config resolved widget config
   * @param {object} handlers onSend(text), onQuickReply(reply), onTalkToAgent(), onEndChat() (also the
   *   waiting panel's Cancel),
   *   onToggle(open), onInput(hasText), onDownload(), onFiles(files) (chosen, dropped or pasted),
   *   onRetryUpload(message), onRemoveUpload(message), onEditDetails() (the header's "Your details"),
   *   knownEmail() (to prefill the transcript's address)
   */
  constructor(config, handlers) {
    this.config = config;
    this.handlers = handlers;
    this.rows = new Map(); // message key -> element
    this.open = false;
    this.handoff = { state: "bot", phase: "bot", agentName: "", attachments: null };
    this.online = true;
    this.bannerTimer = null;
    this.sheet = null; // the pre-engagement form, while shown
    // What the log's messages can do; the buttons go away with the next message, so focus goes to the input.
    this.messageActions = {
      onQuickReply: (reply) => {
        this.handlers.onQuickReply(reply);
        if (!this.sheet) this.input.focus();
      },
      onSendText: (text) => {
        this.handlers.onSend(text);
        this.input.focus();
      },
      onDownload: () => this.handlers.onDownload(),
      onRetryUpload: (message) => this.handlers.onRetryUpload(message),
      onRemoveUpload: (message) => {
        this.handlers.onRemoveUpload(message);
        this.input.focus();
      },
      knownEmail: () => this.handlers.knownEmail() || "",
    };
  }

  mount(container) {
    this.host = el("div", { className: "handoff-widget-host", "data-handoff-widget": "" });
    this.host.style.cssText = "all: initial; display: block;";
    container.appendChild(this.host);
    const root = this.host.attachShadow({ mode: "open" });
    this.root = root;

    const style = el("style");
    style.textContent = `${css}\n:host { ${cssVariables(this.config.colors)} --hw-z: ${Number(this.config.zIndex) || 2147483000}; }`;
    root.appendChild(style);

    this.launcherIcon = el("span", { className: "hw-launcher__icon" }, icon("chat"));
    this.badge = el("span", { className: "hw-badge", "aria-hidden": "true", hidden: true });
    this.launcher = el("button", {
      type: "button",
      className: "hw-launcher",
      "aria-controls": "hw-panel",
      "aria-expanded": "false",
      "aria-label": "Open chat",
      onclick: () => this.handlers.onToggle(!this.open),
    }, [this.launcherIcon, this.badge]);

    this.panel = this.buildPanel();
    root.append(this.panel, this.launcher);
    this.setOpen(false, { focus: false, animate: false });
  }

  buildPanel() {
    const { config } = this;
    this.avatar = el("span", { className: "hw-header__avatar", "aria-hidden": "true" }, icon("bot"));
    this.subtitle = el("span", { className: "hw-subtitle__text", text: config.subtitle });
    this.statusDot = el("span", { className: "hw-dot", "aria-hidden": "true" });
    this.detailsButton = el("button", {
      type: "button", className: "hw-icon-button hw-details", "aria-label": "Your details", title: "Your details", hidden: true,
      onclick: () => this.handlers.onEditDetails(),
    }, icon("details"));
    const header = el("header", { className: "hw-header" }, [
      this.avatar,
      el("div", { className: "hw-heading" }, [
        el("h2", { className: "hw-title", id: "hw-title", text: config.title }),
        el("p", { className: "hw-subtitle" }, [this.statusDot, this.subtitle]),
      ]),
      this.detailsButton,
      el("button", {
        type: "button", className: "hw-icon-button hw-download", "aria-label": "Download transcript", title: "Download transcript",
        onclick: () => this.handlers.onDownload(),
      }, icon("download")),
      el("button", {
        type: "button", className: "hw-icon-button hw-minimise", "aria-label": "Minimise chat", title: "Minimise (Esc)",
        onclick: () => this.handlers.onToggle(false),
      }, icon("minimise")),
    ]);

    this.banner = el("div", { className: "hw-banner", role: "status", "aria-live": "polite", hidden: true });
    // Waiting for an agent (connecting, in the queue, being transferred): updated in place.
    this.waitingTitle = el("strong", { className: "hw-waiting__title" });
    this.waitingDetail = el("span", { className: "hw-waiting__detail" });
    this.cancelButton = el("button", {
      type: "button", className: "hw-cancel", title: "Stop waiting and end the chat", onclick: () => this.handlers.onEndChat(),
    }, "Cancel");
    this.waiting = el("div", { className: "hw-waiting", hidden: true }, [
      el("span", { className: "hw-spinner", "aria-hidden": "true" }),
      el("div", { className: "hw-waiting__text", role: "status", "aria-live": "polite" }, [this.waitingTitle, this.waitingDetail]),
      this.cancelButton,
    ]);

    this.welcome = el("div", { className: "hw-welcome" }, [
      el("span", { className: "hw-welcome__icon", "aria-hidden": "true" }, icon("chat")),
      el("p", { text: config.welcome }),
    ]);
    this.log = el("div", { className: "hw-log", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Conversation" });
    this.typingText = el("span", { className: "hw-typing__text" });
    this.typing = el("div", { className: "hw-typing", role: "status", hidden: true }, [
      el("span", { className: "hw-typing__dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]),
      this.typingText,
    ]);
    this.scroller = el("div", { className: "hw-scroll" }, [this.welcome, this.log, this.typing]);
    // Whether the visitor is following the latest messages: an image that loads later (and grows the
    // log) keeps them at the bottom then, and leaves them where they are when they scrolled up to read.
    this.pinned = true;
    this.scroller.addEventListener("scroll", () => { this.pinned = this.isNearBottom(); }, { passive: true });
    this.log.addEventListener("load", (event) => {
      if (event.target && event.target.tagName === "IMG" && this.pinned) this.scrollToBottom();
    }, true);

    this.actionButton = el("button", { type: "button", className: "hw-action", onclick: () => this.onAction() });
    this.actionBar = el("div", { className: "hw-actions" }, this.actionButton);
    // What the composer is for when it is not a chat line (leaving a message for the team).
    this.promptTitle = el("strong", { className: "hw-prompt__title" });
    this.promptDetail = el("span", { className: "hw-prompt__detail" });
    this.prompt = el("div", { className: "hw-prompt", id: "hw-prompt", role: "status", hidden: true }, [
      icon("message"),
      el("div", { className: "hw-prompt__text" }, [this.promptTitle, this.promptDetail]),
    ]);

    this.input = el("textarea", {
      id: "hw-input", className: "hw-input", rows: "1", placeholder: "Type your message…",
      autocomplete: "off", "aria-label": "Type your message", maxlength: "2000",
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      this.handlers.onInput(this.input.value.trim().length > 0);
    });
    this.input.addEventListener("paste", (event) => {
      const files = event.clipboardData ? Array.from(event.clipboardData.files || []) : [];
      if (files.length && this.handoff.attachments) {
        event.preventDefault();
        this.handlers.onFiles(files);
      }
    });
    this.sendButton = el("button", { type: "submit", className: "hw-send", "aria-label": "Send message", title: "Send" }, icon("send"));
    // Files, only while the agent chat offers them: one per message, checked before anything is sent.
    this.fileInput = el("input", { type: "file", className: "hw-file-input", tabindex: "-1", "aria-hidden": "true", hidden: true });
    this.fileInput.addEventListener("change", () => {
      const files = Array.from(this.fileInput.files || []);
      this.fileInput.value = ""; // choosing the same file again fires `change` again
      if (files.length) this.handlers.onFiles(files);
    });
    this.attachHint = el("span", { className: "hw-visually-hidden", id: "hw-attach-hint" });
    this.attachButton = el("button", {
      type: "button", className: "hw-attach", "aria-label": "Attach a file", "aria-describedby": "hw-attach-hint", hidden: true,
      onclick: () => this.fileInput.click(),
    }, icon("attach"));
    this.composerError = el("div", { className: "hw-composer-error", role: "alert", hidden: true });
    this.composer = el("form", { className: "hw-composer", onsubmit: (event) => { event.preventDefault(); this.submit(); } }, [
      el("label", { className: "hw-visually-hidden", for: "hw-input", text: "Message" }),
      this.attachButton,
      this.attachHint,
      this.fileInput,
      this.input,
      this.sendButton,
    ]);

    this.dropZone = el("div", { className: "hw-drop", "aria-hidden": "true", hidden: true }, [icon("attach"), el("span", { text: "Drop a file to send it" })]);
    const panel = el("section", {
      id: "hw-panel", className: "hw-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "hw-title",
    }, [header, this.banner, this.waiting, this.scroller, this.actionBar, this.prompt, this.composerError, this.composer, this.dropZone]);
    this.watchDrops(panel);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.handlers.onToggle(false);
      }
    });
    this.updateAction();
    return panel;
  }

  /** Files dragged onto the panel while the chat takes files (else the page keeps its own drop behaviour). */
  watchDrops(panel) {
    const carriesFiles = (event) => Boolean(event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files"));
    let depth = 0;
    const leave = () => {
      depth = 0;
      this.dropZone.hidden = true;
    };
    panel.addEventListener("dragenter", (event) => {
      if (!this.handoff.attachments || !carriesFiles(event) || this.sheet) return;
      event.preventDefault();
      depth += 1;
      this.dropZone.hidden = false;
    });
    panel.addEventListener("dragover", (event) => {
      if (!this.handoff.attachments || !carriesFiles(event) || this.sheet) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    panel.addEventListener("dragleave", () => {
      depth -= 1;
      if (depth <= 0) leave();
    });
    panel.addEventListener("drop", (event) => {
      if (!this.handoff.attachments || !carriesFiles(event) || this.sheet) return;
      event.preventDefault();
      leave();
      this.handlers.onFiles(Array.from(event.dataTransfer.files || []));
    });
  }

  /** A problem with what the visitor tried to send (a file outside the limits), over the composer until the next try. */
  showComposerError(text) {
    this.composerError.replaceChildren(icon("alert"), el("span", { className: "hw-composer-error__text", text }), el("button", {
      type: "button", className: "hw-icon-button hw-composer-error__close", "aria-label": "Dismiss", title: "Dismiss",
      onclick: () => this.clearComposerError(true),
    }, icon("close")));
    this.composerError.hidden = false;
  }

  clearComposerError(focus = false) {
    if (this.composerError.hidden) return;
    this.composerError.hidden = true;
    this.composerError.replaceChildren();
    if (focus) this.input.focus();
  }

  /**
   * The pre-engagement form in place of the log and composer: `mode` "request" (before talking to
   * a person) or "edit" (the header button); `onSubmit(details)`, `onOther()` (Skip / Cancel).
   */
  showDetailsForm({ mode, fields, values, onSubmit, onOther }) {
    this.hideDetailsForm(false);
    this.sheet = preEngagementForm({ mode, fields, values, onSubmit, onOther });
    this.panel.insertBefore(this.sheet, this.scroller);
    this.panel.classList.add("hw-panel--sheet");
    if (this.open) this.sheet.focusFirst();
  }

  hideDetailsForm(focus = true) {
    if (!this.sheet) return;
    this.sheet.remove();
    this.sheet = null;
    this.panel.classList.remove("hw-panel--sheet");
    if (focus && this.open) this.input.focus();
  }

  /** The header's "Your details" button (pre-engagement form on, nobody known, with the bot). */
  setDetailsOffer(visible) {
    this.detailsButton.hidden = !visible;
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    this.autosize();
    this.handlers.onSend(text);
    this.input.focus();
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 120)}px`;
  }

  onAction() {
    if (this.handoff.state === "agent" || this.handoff.state === "waiting") this.handlers.onEndChat();
    else this.handlers.onTalkToAgent();
  }

  setOpen(open, { focus = true, animate = true } = {}) {
    this.open = open;
    this.panel.classList.toggle("hw-panel--still", !animate);
    this.panel.hidden = !open;
    this.host.toggleAttribute("data-open", open);
    this.launcher.setAttribute("aria-expanded", String(open));
    this.launcher.classList.toggle("hw-launcher--open", open);
    this.launcherIcon.replaceChildren(icon(open ? "close" : "chat"));
    this.updateLauncherLabel();
    if (open) {
      this.scrollToBottom(true);
      if (focus) {
        if (this.sheet) this.sheet.focusFirst();
        else this.input.focus();
      }
    } else if (focus) {
      this.launcher.focus();
    }
  }

  setUnread(count) {
    this.unread = count;
    this.badge.hidden = count <= 0;
    this.badge.textContent = count > 9 ? "9+" : String(count);
    this.updateLauncherLabel();
  }

  updateLauncherLabel() {
    let label = this.open ? "Minimise chat" : "Open chat";
    if (!this.open && this.unread > 0) label += `, ${this.unread} unread message${this.unread === 1 ? "" : "s"}`;
    this.launcher.setAttribute("aria-label", label);
  }

  renderMessages(messages, { forceScroll = false } = {}) {
    const nearBottom = this.isNearBottom();
    const keep = new Set();
    let previous = null;
    // Buttons stay usable until someone says something: notices after them (back with the bot...) don't count.
    let activeReplies = -1;
    messages.forEach((message, index) => {
      if ((message.quickReplies && message.quickReplies.length) || asksForInput(message)) activeReplies = index;
      else if (message.sender !== "system") activeReplies = -1;
    });
    messages.forEach((message, index) => {
      keep.add(message.key);
      let row = this.rows.get(message.key);
      if (!row) {
        row = messageElement(message, { botName: this.config.botName, actions: this.messageActions });
        this.rows.set(message.key, row);
      }
      updateMessageElement(row, message, previous, index === activeReplies, this.messageActions);
      if (this.log.children[index] !== row) this.log.insertBefore(row, this.log.children[index] || null);
      previous = message;
    });
    for (const [key, row] of this.rows) {
      if (!keep.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    this.welcome.hidden = messages.length > 0;
    if (forceScroll || nearBottom) this.scrollToBottom();
  }

  isNearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  setHandoff(handoff) {
    const previousPhase = this.handoff.phase;
    this.handoff = handoff;
    this.panel.dataset.handoff = handoff.state;
    this.panel.dataset.phase = handoff.phase;
    const status = statusPanel(handoff);
    const waiting = Boolean(status && status.kind === "waiting");
    this.waiting.hidden = !waiting;
    if (waiting) {
      if (this.waitingTitle.textContent !== status.title) this.waitingTitle.textContent = status.title;
      if (this.waitingDetail.textContent !== status.detail) this.waitingDetail.textContent = status.detail;
    }
    const prompt = Boolean(status && status.kind === "prompt");
    this.prompt.hidden = !prompt;
    this.composer.classList.toggle("hw-composer--prompt", prompt);
    if (prompt) {
      this.promptTitle.textContent = status.title;
      this.promptDetail.textContent = status.detail;
      this.input.setAttribute("aria-describedby", "hw-prompt");
      this.input.placeholder = "Type your message for our team…";
      if (previousPhase !== "leave_message" && this.open) this.input.focus();
    } else {
      this.input.removeAttribute("aria-describedby");
      this.input.placeholder = "Type your message…";
    }
    this.setAttachments(handoff.attachments);
    if (handoff.state === "agent") {
      this.avatar.replaceChildren(el("span", { className: "hw-header__initials", text: initials(handoff.agentName) }));
      this.avatar.classList.add("hw-header__avatar--agent");
    } else {
      this.avatar.replaceChildren(icon("bot"));
      this.avatar.classList.remove("hw-header__avatar--agent");
    }
    this.updateSubtitle();
    this.updateAction();
  }

  /** The attach button, with the limits as its description and the file picker's filter. */
  setAttachments(limits) {
    this.attachButton.hidden = !limits;
    if (!limits) {
      if (!this.composerError.hidden) this.clearComposerError();
      this.dropZone.hidden = true;
      return;
    }
    const hint = limitsText(limits);
    if (this.attachHint.textContent !== hint) {
      this.attachHint.textContent = hint;
      this.attachButton.title = `Attach a file. ${hint}.`;
      this.fileInput.accept = limits.types.join(",");
    }
  }

  updateAction() {
    const state = this.handoff.state;
    const withAgent = state === "agent" || state === "waiting";
    // The waiting panel has its own Cancel; a message being left needs the composer only.
    this.actionBar.hidden = state === "waiting" || this.handoff.phase === "leave_message";
    this.actionButton.replaceChildren(icon(withAgent ? "end" : "agent"), withAgent ? (state === "waiting" ? "Cancel and end chat" : "End chat") : "Talk to an agent");
    this.actionButton.classList.toggle("hw-action--end", withAgent);
  }

  updateSubtitle() {
    this.subtitle.textContent = subtitleText(this.handoff, { online: this.online, fallback: this.config.subtitle });
    this.statusDot.className = `hw-dot hw-dot--${dotKind(this.handoff, this.online)}`;
  }

  /** "offline" shows a lasting notice; "restored" a short one. */
  setConnectivity(status) {
    const stick = this.isNearBottom();
    clearTimeout(this.bannerTimer);
    this.online = status !== "offline";
    this.panel.dataset.connection = this.online ? "online" : "offline";
    if (status === "offline") {
      this.showBanner("offline", "Connection lost. Trying to reconnect…", "offline");
    } else if (status === "restored") {
      this.showBanner("online", "You're back online.", "online");
      this.bannerTimer = setTimeout(() => { this.banner.hidden = true; }, 4000);
    } else {
      this.banner.hidden = true;
    }
    this.updateSubtitle();
    if (stick) this.scrollToBottom();
  }

  showBanner(kind, text, iconName) {
    this.banner.className = `hw-banner hw-banner--${kind}`;
    this.banner.replaceChildren(icon(iconName), el("span", { text }));
    this.banner.hidden = false;
  }

  showTyping(text) {
    const nearBottom = this.isNearBottom();
    this.typing.hidden = !text;
    this.typingText.textContent = text || "";
    if (text && nearBottom) this.scrollToBottom();
  }
}
