// Fetches a session's conversation history (bot, visitor, agent and system messages) from the server.

import { fromHistoryEntry, splitLikeRasa } from "./messages.js";

function entriesOf(body) {
  if (Array.isArray(body)) return body;
  if (body && typeof body === "object") {
    for (const key of ["messages", "history", "events"]) if (Array.isArray(body[key])) return body[key];
  }
  return [];
}

/**
 * The history as messages; [] for an unknown session, null when it could not be fetched.
 * `token`: the page's bearer token, for a server with `jwt_key`.
 */
export async function fetchHistory(url, { token = "", timeoutMs = 8000 } = {}) {
  if (!url) return null;
  const controller = typeof AbortController === "function" ? new AbortController() : null;
  const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : null;
  try {
    const response = await fetch(url, {
      headers: token ? { Accept: "application/json", Authorization: `Bearer ${token}` } : { Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
      signal: controller ? controller.signal : undefined,
    });
    if (response.status === 404) return [];
    if (!response.ok) return null;
    return entriesOf(await response.json()).map(fromHistoryEntry).filter(Boolean).flatMap(splitLikeRasa);
  } catch (_) {
    return null;
  } finally {
    if (timer) clearTimeout(timer);
  }
}
