// How the popup and the options page talk to the service worker: one-off actions, and a port
// that brings the current status and every update the host pushes.
import { api } from "./browser.js";

const RECONNECT_MS = 500;

/** Resolves with a reply envelope {ok, ...} or {ok: false, error: {code, message, details}}. */
export async function ask(action, fields = {}) {
  try {
    return await api.runtime.sendMessage({ action, ...fields });
  } catch (error) {
    return { ok: false, error: { code: "EXTENSION_ERROR", message: String(error.message ?? error), details: {} } };
  }
}

export function hostRequest(type, fields = {}) {
  return ask("host", { type, fields });
}

/**
 * Calls onStatus(status) and onPush(message) for as long as the page is open. `name` is "popup"
 * when opening the page should refresh what the worker knows, as opening the popup does.
 */
export function listen({ name, onStatus, onPush }) {
  const port = api.runtime.connect({ name });
  port.onMessage.addListener((message) => {
    if (message.kind === "status") onStatus(message.status);
    else if (message.kind === "push") onPush(message.message);
  });
  // The browser may stop and restart the worker; listen again to the new one.
  port.onDisconnect.addListener(() => setTimeout(() => listen({ name, onStatus, onPush }), RECONNECT_MS));
}
