// Posts one file to the server's upload route (multipart: `relay_id`, then `file`).

import { uploadFailure } from "./attachments.js";

const UPLOAD_TIMEOUT_MS = 120000; // 16 MB on a slow uplink

/**
 * Uploads `file`; resolves to `{ok: true, message}` (the server's `{message}`: the visitor turn as
 * history shows it) or `{ok: false, status, code, error, retryable}`. Never rejects.
 */
export async function uploadFile({ url, file, relayId, token, timeoutMs = UPLOAD_TIMEOUT_MS }) {
  const form = new FormData();
  form.append("relay_id", relayId); // first, so the server knows it before the file's bytes
  form.append("file", file, file.name);
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const controller = typeof AbortController === "function" ? new AbortController() : null;
  let timedOut = false;
  const timer = controller ? setTimeout(() => { timedOut = true; controller.abort(); }, timeoutMs) : null;
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      body: form,
      headers,
      credentials: "omit",
      cache: "no-store",
      signal: controller ? controller.signal : undefined,
    });
  } catch (_) {
    return uploadFailure(0, { code: timedOut ? "timeout" : "network" });
  } finally {
    if (timer) clearTimeout(timer);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null; // a proxy's HTML error page: the status says enough
  }
  if (response.ok) return { ok: true, message: body && typeof body === "object" ? body.message || null : null };
  return { ok: false, ...uploadFailure(response.status, body) };
}
