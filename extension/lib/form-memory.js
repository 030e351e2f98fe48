// Remembers which DHIS2 event each uploaded Capture form became, so uploading the same form
// again (a second click, the popup opened twice) updates that event instead of adding a copy.
// Only a SHA-256 digest of the form is kept, never its values.
import { api } from "./browser.js";

const MEMORY_KEY = "uploadedForms";
const KEEP_MS = 30 * 24 * 60 * 60 * 1000;
const KEEP_COUNT = 1000;

async function fingerprint(form) {
  const values = Object.keys(form.values)
    .sort()
    .map((uid) => [uid, String(form.values[uid])]);
  const canonical = JSON.stringify([form.program, form.orgUnit, form.occurredAt, values]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
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
