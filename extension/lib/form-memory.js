// Remembers which DHIS2 event each uploaded Capture form became, so uploading the same form
// again (a second click, the popup opened twice) updates that event instead of adding a copy.
// Only a keyed digest (HMAC-SHA-256) of the form is kept, never its values. The key is random
// and made for this install: a plain hash of a form could be checked against guessed patient
// data by anyone who reads the browser profile; a keyed one cannot without the key.
import { api } from "./browser.js";

const MEMORY_KEY = "uploadedFormsKeyed";
const UNKEYED_MEMORY_KEY = "uploadedForms"; // plain SHA-256 digests an earlier version kept
const INSTALL_KEY = "formMemoryKey";
const KEEP_MS = 30 * 24 * 60 * 60 * 1000;
const KEEP_COUNT = 1000;

let installKey = null;

async function loadInstallKey() {
  const stored = await api.storage.local.get(INSTALL_KEY);
  let raw = stored[INSTALL_KEY];
  if (!Array.isArray(raw) || raw.length !== 32) {
    raw = Array.from(crypto.getRandomValues(new Uint8Array(32)));
    await api.storage.local.set({ [INSTALL_KEY]: raw });
    await api.storage.local.remove(UNKEYED_MEMORY_KEY);
  }
  return crypto.subtle.importKey("raw", new Uint8Array(raw), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

async function fingerprint(form) {
  installKey ??= loadInstallKey();
  const values = Object.keys(form.values)
    .sort()
    .map((uid) => [uid, String(form.values[uid])]);
  const canonical = JSON.stringify([form.program, form.orgUnit, form.occurredAt, values]);
  const digest = await crypto.subtle.sign("HMAC", await installKey, new TextEncoder().encode(canonical));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function remembered() {
  const stored = await api.storage.local.get(MEMORY_KEY);
  return stored[MEMORY_KEY] ?? {};
}

/** The event an identical form was uploaded as: {event, at}, or null. */
export async function earlierUpload(form) {
  const memory = await remembered();
  return memory[await fingerprint(form)] ?? null;
}

export async function rememberUpload(form, event) {
  const memory = await remembered();
  memory[await fingerprint(form)] = { event, at: Date.now() };
  const kept = Object.entries(memory)
    .filter(([, entry]) => Date.now() - entry.at < KEEP_MS)
    .sort(([, a], [, b]) => b.at - a.at)
    .slice(0, KEEP_COUNT);
  await api.storage.local.set({ [MEMORY_KEY]: Object.fromEntries(kept) });
}
