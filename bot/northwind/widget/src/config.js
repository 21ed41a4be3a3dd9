// Widget configuration: defaults, the `data-*` attributes of the script tag, and validation.

export const DEFAULT_COLORS = {
  primary: "#1f6feb",
  primaryText: "#ffffff",
  background: "#ffffff",
  surface: "#f4f6f8",
  text: "#1c2330",
  muted: "#667085",
  visitorBubble: "", // defaults to `primary`
  visitorText: "", // defaults to `primaryText`
  botBubble: "#eef1f5",
  botText: "#1c2330",
  agentBubble: "#fff4df",
  agentText: "#1c2330",
  agentAccent: "#c77700",
  system: "#667085",
  danger: "#b42318",
  success: "#067647",
};

export const DEFAULTS = {
  serverUrl: "", // Rasa server; defaults to the origin that served widget.js
  socketPath: "/socket.io/",
  // Conversation history of a session. `{serverUrl}` and `{session_id}` are replaced;
  // without `{session_id}` it is appended as a query parameter. Set to null to disable.
  historyUrl: "{serverUrl}/webhooks/handoff_socketio/history/{session_id}",
  title: "Chat with us",
  subtitle: "Our assistant answers right away",
  botName: "Assistant",
  welcome: "Hi! Ask me about orders, shipping or returns, or talk to a person at any time.",
  colors: {},
  initPayload: null, // sent once for a brand-new session, e.g. "/greet"
  storage: "local", // "local" | "session" | "memory" | an object with getItem/setItem/removeItem
  storageKey: "handoff-widget",
  open: false, // open the panel on first visit
  talkToAgentPayload: "/talk_to_agent",
  endChatPayload: "/end_chat",
  transports: null, // socket.io transports, e.g. ["websocket"]; null: socket.io's default
  typingIdleMs: 1500, // visitor "stopped typing" after this long without a keystroke
  container: null, // element to mount into; default document.body
  zIndex: 2147483000,
  // Sent as `metadata` with every message (Rasa's socket.io `metadata_key`), e.g. `{language: "en"}`.
  metadata: null,
  // The signed-in customer the page knows, {name, email, customer_id}: sent as `metadata.customer`
  // with every message, for a channel that vouches for it and passes it on to the agent.
  customer: null,
  // For visitors the page does not know: ask who they are (optional form) the first time they ask
  // for a person; true (name and email) or a list of "name" / "email". Sent as `metadata.pre_engagement`.
  preEngagement: false,
  // A bearer token (JWT) for a server with `jwt_key`: a string or a function returning one (or a
  // promise of one). Sent in the socket.io handshake (`auth.token`) and to the history and upload routes.
  authToken: null,
};

// data-server-url="..." -> serverUrl; data-color-primary="#123" -> colors.primary
const ATTRIBUTES = {
  serverUrl: "serverUrl",
  socketPath: "socketPath",
  historyUrl: "historyUrl",
  title: "title",
  subtitle: "subtitle",
  botName: "botName",
  welcome: "welcome",
  initPayload: "initPayload",
  storage: "storage",
  storageKey: "storageKey",
  open: "open",
  preEngagement: "preEngagement",
  authToken: "authToken",
};

function jsonObject(text, attribute) {
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
  } catch (_) {
    // reported below
  }
  console.warn(`handoff widget: ${attribute} is not a JSON object; ignored`);
  return null;
}

export function configFromScript(script) {
  if (!script || !script.dataset) return {};
  const data = script.dataset;
  const config = {};
  for (const [attribute, key] of Object.entries(ATTRIBUTES)) {
    const value = data[attribute];
    if (value === undefined || value === "") continue;
    config[key] = value;
  }
  if (config.open !== undefined) config.open = config.open !== "false";
  if (config.historyUrl === "none") config.historyUrl = null;
  if (config.preEngagement !== undefined && config.preEngagement !== "false") {
    // data-pre-engagement="true" (name and email) or "name,email"
    config.preEngagement = config.preEngagement === "true" ? true : config.preEngagement.split(",");
  } else {
    delete config.preEngagement;
  }
  if (data.metadata) {
    const parsed = jsonObject(data.metadata, "data-metadata");
    if (parsed) config.metadata = parsed;
  }
  if (data.customer) {
    const parsed = jsonObject(data.customer, "data-customer");
    if (parsed) config.customer = parsed;
  }
  const colors = {};
  for (const [attribute, value] of Object.entries(data)) {
    const match = /^color([A-Z]\w*)$/.exec(attribute);
    if (match && value) colors[match[1][0].toLowerCase() + match[1].slice(1)] = value;
  }
  if (data.primaryColor) colors.primary = data.primaryColor;
  if (Object.keys(colors).length) config.colors = colors;
  return config;
}

export function scriptOrigin(script) {
  try {
    return script && script.src ? new URL(script.src, document.baseURI).origin : "";
  } catch (_) {
    return "";
  }
}

export function resolveConfig(options, fallbackServerUrl) {
  const config = { ...DEFAULTS, ...(options || {}) };
  config.colors = { ...DEFAULT_COLORS, ...((options && options.colors) || {}) };
  if (!config.colors.visitorBubble) config.colors.visitorBubble = config.colors.primary;
  if (!config.colors.visitorText) config.colors.visitorText = config.colors.primaryText;
  config.serverUrl = String(config.serverUrl || fallbackServerUrl || window.location.origin).replace(/\/+$/, "");
  if (!config.socketPath.startsWith("/")) config.socketPath = "/" + config.socketPath;
  return config;
}

export function historyUrlFor(config, sessionId) {
  if (!config.historyUrl || !sessionId) return null;
  const id = encodeURIComponent(sessionId);
  let url = config.historyUrl.replace("{serverUrl}", config.serverUrl);
  if (url.includes("{session_id}")) return url.replace("{session_id}", id);
  return url + (url.includes("?") ? "&" : "?") + "session_id=" + id;
}
