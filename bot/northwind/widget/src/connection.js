// The socket.io link to Rasa, speaking Rasa's socket.io channel protocol:
// session_request/session_confirm, user_uttered, bot_uttered; plus the handoff connector's
// visitor_typing (sent) and agent_typing (received) events.

import { io } from "socket.io-client";

export class RasaConnection {
  /**
   * @param {object} options serverUrl, socketPath, transports, sessionId, metadata (an object, or a
   *   function returning what goes with each message), authToken (async function: the bearer token or "")
   * @param {object} handlers onConfirm(sessionId, isReconnect), onBotUttered(data),
   *   onAgentTyping(data), onOffline(reason), onConnectError(error)
   */
  constructor(options, handlers) {
    this.options = options;
    this.handlers = handlers;
    this.sessionId = options.sessionId || null;
    this.confirmed = false;
    this.everConfirmed = false;
    this.socket = null;
  }

  start() {
    const { serverUrl, socketPath, transports } = this.options;
    const socketOptions = {
      path: socketPath,
      reconnection: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
      randomizationFactor: 0.3,
      timeout: 10000,
    };
    if (transports) socketOptions.transports = transports;
    // Like Rasa's socket.io channel with `jwt_key`: the token in the handshake's `auth`.
    if (this.options.authToken) {
      socketOptions.auth = (callback) => {
        Promise.resolve(this.options.authToken()).then((token) => callback(token ? { token } : {}), () => callback({}));
      };
    }
    const socket = io(serverUrl, socketOptions);
    this.socket = socket;

    socket.on("connect", () => {
      this.confirmed = false;
      socket.emit("session_request", { session_id: this.sessionId });
    });
    socket.on("session_confirm", (data) => {
      const id = typeof data === "string" ? data : data && data.session_id;
      if (id) this.sessionId = id;
      const isReconnect = this.everConfirmed;
      this.confirmed = true;
      this.everConfirmed = true;
      this.handlers.onConfirm(this.sessionId, isReconnect);
    });
    socket.on("bot_uttered", (data) => this.handlers.onBotUttered(data));
    socket.on("agent_typing", (data) => this.handlers.onAgentTyping(data || {}));
    socket.on("disconnect", (reason) => {
      this.confirmed = false;
      this.handlers.onOffline(reason);
      // The server closed this socket on purpose; socket.io leaves reconnecting to us.
      if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
    });
    socket.on("connect_error", (error) => {
      this.confirmed = false;
      this.handlers.onConnectError(error);
    });
  }

  get ready() {
    return Boolean(this.socket && this.socket.connected && this.confirmed);
  }

  sendText(text) {
    const message = { message: text, session_id: this.sessionId };
    // Like Rasa's webchat customData: what the page tells the bot with every message.
    const metadata = typeof this.options.metadata === "function" ? this.options.metadata() : this.options.metadata;
    if (metadata) message.metadata = metadata;
    this.socket.emit("user_uttered", message);
  }

  setTyping(typing) {
    if (this.ready) this.socket.emit("visitor_typing", { session_id: this.sessionId, typing });
  }

  stop() {
    if (this.socket) this.socket.disconnect();
  }
}
