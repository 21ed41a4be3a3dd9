// Files in an agent chat (pure: no DOM, unit-tested): the limits the server announces, the checks
// made before anything is uploaded, and what an upload's failure tells the visitor.
//
// The server offers attachments on the `connecting` notice, `metadata.handoff.attachments`:
// {max_bytes, types: [MIME types], upload_path}; the widget posts one file per message to
// `<serverUrl><upload_path>/<session_id>` (multipart: `file`, `relay_id`). No offer: no attach button.

const IMAGE_PREVIEW_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];

const TYPE_LABELS = {
  "image/jpeg": "JPEG",
  "image/png": "PNG",
  "image/gif": "GIF",
  "image/webp": "WebP",
  "application/pdf": "PDF",
  "text/plain": "text",
};

function positiveNumber(value) {
  const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  return typeof number === "number" && isFinite(number) && number > 0 ? Math.floor(number) : null;
}

/**
 * The attachment limits of a `connecting` notice's `metadata.handoff.attachments`, or null when
 * the server offers none (or offers something unusable: the button stays away rather than fail).
 * `uploadPath` must be a path on the server: a notice cannot send files to another host.
 */
export function attachmentLimits(raw) {
  if (!raw || typeof raw !== "object") return null;
  const maxBytes = positiveNumber(raw.max_bytes);
  const types = Array.isArray(raw.types)
    ? raw.types.filter((t) => typeof t === "string" && t.includes("/")).map((t) => t.trim().toLowerCase())
    : [];
  const path = typeof raw.upload_path === "string" ? raw.upload_path.trim().replace(/\/+$/, "") : "";
  if (!maxBytes || !types.length || !path.startsWith("/") || path.startsWith("//") || path.includes("..")) return null;
  return { maxBytes, types, uploadPath: path };
}

/** "12 KB", "3.4 MB", "16 MB" (1024-based, as Flex states its 16 MB limit). */
export function formatBytes(bytes) {
  if (typeof bytes !== "number" || !isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} byte${bytes === 1 ? "" : "s"}`;
  const kb = bytes / 1024;
  if (kb < 1024) return `${Math.max(1, Math.round(kb))} KB`;
  const mb = kb / 1024;
  return `${mb >= 10 || Number.isInteger(mb) ? Math.round(mb) : mb.toFixed(1).replace(/\.0$/, "")} MB`;
}

/** "PDF", "PNG", "text", "ZIP" for a MIME type; "" when unknown. */
export function typeLabel(type) {
  const value = String(type || "").toLowerCase();
  if (TYPE_LABELS[value]) return TYPE_LABELS[value];
  const subtype = value.split("/")[1] || "";
  return subtype.replace(/^(x-|vnd\.)/, "").split(/[.+]/)[0].toUpperCase();
}

/** "JPEG, PNG, GIF, PDF or text files". */
export function allowedText(types) {
  const labels = [...new Set(types.map((t) => (t.endsWith("/*") ? t.split("/")[0] : typeLabel(t))))].filter(Boolean);
  if (!labels.length) return "";
  const list = labels.length === 1 ? labels[0] : `${labels.slice(0, -1).join(", ")} or ${labels[labels.length - 1]}`;
  return `${list} files`;
}

/** "Up to 16 MB: JPEG, PNG, GIF, PDF or text files" (the attach button's description). */
export function limitsText(limits) {
  return `One file per message, up to ${formatBytes(limits.maxBytes)}: ${allowedText(limits.types)}`;
}

function typeAllowed(type, types) {
  const value = String(type || "").toLowerCase();
  if (!value) return false;
  return types.some((t) => t === value || (t.endsWith("/*") && value.startsWith(t.slice(0, -1))));
}

/**
 * Why these files cannot be sent (`{code, error}`: the server's codes, a sentence for the visitor),
 * or null when the one file is fine. Checked before anything leaves the browser.
 */
export function checkFiles(files, limits) {
  const list = Array.from(files || []);
  if (!list.length) return { code: "no_file", error: "No file was chosen." };
  if (list.length > 1) {
    return { code: "several_files", error: `You chose ${list.length} files: send one file per message.` };
  }
  const [file] = list;
  const name = file.name || "This file";
  if (!typeAllowed(file.type, limits.types)) {
    const kind = typeLabel(file.type);
    return {
      code: "type_not_allowed",
      error: `“${name}” can't be sent: ${kind ? `${kind} files aren't` : "this type of file isn't"} allowed. You can send ${allowedText(limits.types)}.`,
    };
  }
  if (file.size > limits.maxBytes) {
    return {
      code: "too_large",
      error: `“${name}” is too large (${formatBytes(file.size)}): files can be up to ${formatBytes(limits.maxBytes)}.`,
    };
  }
  if (file.size === 0) return { code: "empty", error: `“${name}” is empty.` };
  return null;
}

/** Whether the browser can show this file type as an image preview. */
export function previewable(type) {
  return IMAGE_PREVIEW_TYPES.includes(String(type || "").toLowerCase());
}

/** Where one session's files go: `<serverUrl><upload_path>/<session_id>`. */
export function uploadUrl(serverUrl, uploadPath, sessionId) {
  return `${String(serverUrl).replace(/\/+$/, "")}${uploadPath}/${encodeURIComponent(sessionId)}`;
}

/** A new relay id (a UUID): the same one goes with every retry of an upload, so it is posted once. */
export function newRelayId(cryptoRef = globalThis.crypto) {
  if (cryptoRef && typeof cryptoRef.randomUUID === "function") return cryptoRef.randomUUID();
  const bytes = new Uint8Array(16);
  if (cryptoRef && typeof cryptoRef.getRandomValues === "function") cryptoRef.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const FAILURE_TEXT = {
  network: "The connection dropped before the file arrived.",
  timeout: "The upload took too long.",
  401: "You're not allowed to send files in this chat.",
  403: "You're not allowed to send files in this chat.",
  404: "This conversation could not be found.",
  409: "The agent chat has ended, so the file was not sent.",
  413: "The file is too large.",
  415: "This type of file can't be sent.",
  429: "Too many files at once.",
  502: "The file couldn't be passed on to the agent.",
};

/**
 * What a failed upload tells the visitor: `{status, code, error, retryable}`. `status` 0 is no
 * answer at all (network, `code` "network" or "timeout"). The server's own sentence (`{error,
 * code}`) wins; retrying is offered where it can help: no answer, a server or Twilio failure
 * (502 `flex_failed`), too many requests. A retry reuses the relay id, so nothing is posted twice.
 */
export function uploadFailure(status, body) {
  const given = body && typeof body === "object" ? body : {};
  const code = typeof given.code === "string" && given.code ? given.code : status === 0 ? "network" : `http_${status}`;
  let error = typeof given.error === "string" ? given.error.trim().slice(0, 300) : "";
  if (!error) error = FAILURE_TEXT[status === 0 ? code : status] || (status >= 500 ? FAILURE_TEXT[502] : "The file could not be sent.");
  const retryable = status === 0 || status >= 500 || status === 408 || status === 429;
  return { status, code, error, retryable };
}
