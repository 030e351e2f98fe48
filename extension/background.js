// The service worker: owns the native port, keeps the last known status in storage.session so
// the popup renders at once, relays the host's pushed updates to open pages, keeps the badge
// current, passes the browser's DHIMS2 session to the host and reads the Capture form on demand.
import { api } from "./lib/browser.js";
import { storedForm } from "./lib/capture-values.js";
import { earlierUpload, rememberUpload } from "./lib/form-memory.js";
import { NativeHost, localError } from "./lib/native-host.js";
import { badgeFor, connectionStateFor, emptyStatus, serverBase } from "./lib/status.js";

const STATUS_KEY = "status";
const SEEN_KEY = "seenRejected"; // batch id -> rejected count the clerk has seen; no patient data
const RECENT_BATCHES = 10;
const SESSION_COOKIE = "JSESSIONID";
const PERSIST_DELAY_MS = 100;
// Only these requests travel with the browser's DHIMS2 session.
const NEEDS_SESSION = new Set(["check_connection", "upload", "validate"]);

const pages = new Set(); // ports of open popups and option pages
const programs = new Map(); // program uid -> get_program reply, for this worker's life
let status = emptyStatus();
const restored = Promise.all([
  api.storage.session.get(STATUS_KEY),
  api.storage.local.get(SEEN_KEY),
  api.runtime.getPlatformInfo(),
]).then(([stored, local, platform]) => {
  // Batches survive a worker restart; how the host and DHIMS2 are doing is found out again.
  if (stored[STATUS_KEY]) {
    const { batches, config } = stored[STATUS_KEY];
    status = { ...status, batches, config };
  }
  // Rejections the clerk has seen stay seen after a browser restart (storage.session does not).
  status = { ...status, seenRejected: local[SEEN_KEY] ?? {}, os: platform.os };
});

const host = new NativeHost({
  onState: (state) => {
    update({
      host: { state: state.state, problem: state.problem, version: state.hello?.version },
      ...(state.state === "ready" ? {} : { connection: { state: "unknown" } }),
    });
    if (state.state === "ready") refreshEverything();
  },
  onPush: (message) => {
    followPush(message);
    broadcast({ kind: "push", message });
  },
});

let persistTimer = null;

function update(changes) {
  status = { ...status, ...changes };
  broadcast({ kind: "status", status });
  // A large batch moves hundreds of times a second; storage and badge need only the latest.
  persistTimer ??= setTimeout(persist, PERSIST_DELAY_MS);
}

async function persist() {
  persistTimer = null;
  await restored;
  const badge = badgeFor(status);
  await Promise.all([
    api.storage.session.set({ [STATUS_KEY]: status }),
    api.storage.local.set({ [SEEN_KEY]: status.seenRejected }),
    api.action.setBadgeText({ text: badge.text }),
    api.action.setBadgeBackgroundColor({ color: badge.color }),
  ]);
}

function broadcast(message) {
  for (const port of pages) port.postMessage(message);
}

function upsertBatch(summary) {
  const others = status.batches.filter((batch) => batch.batch !== summary.batch);
  const batches = [summary, ...others].sort((a, b) => b.created_at - a.created_at).slice(0, RECENT_BATCHES);
  const seenRejected = { ...status.seenRejected };
  if (pages.size) seenRejected[summary.batch] = summary.rejected; // the clerk is looking at it
  update({ batches, seenRejected });
}

function followPush(message) {
  if (message.type === "batch.progress") {
    const { type, ...summary } = message;
    upsertBatch(summary);
  } else if (message.type === "sender.state") {
    const sender = { state: message.state, error: message.error, pending: message.pending };
    update({ sender, connection: connectionAfter(sender) });
    // Sending again after an outage or a sign-in: who is signed in, at which version, is news.
    if (!SENDER_PROBLEMS[sender.state] && SENDER_PROBLEMS_SEEN.has(status.connection.state)) checkConnection();
  }
}

// What the sender met last is newer than the last connection check: it decides the line.
const SENDER_PROBLEMS = { sign_in_needed: "sign_in_needed", offline: "unreachable" };
const SENDER_PROBLEMS_SEEN = new Set(Object.values(SENDER_PROBLEMS));

function connectionAfter(sender) {
  const state = SENDER_PROBLEMS[sender.state];
  // Without the permission to read the session, signing in again does not help: keep saying so.
  if (!state || status.connection.state === "permission_needed") return status.connection;
  return { state, error: sender.error };
}

async function refreshEverything() {
  await restored;
  await hostRequest("get_config");
  await checkConnection();
  await hostRequest("list_batches", { page_size: RECENT_BATCHES });
}

let checking = null;
let checkAgain = false;

/**
 * One check at a time: a caller meanwhile shares the running one, unless the session changed
 * since it started (`newSession`); then one more check follows with the new session.
 */
function checkConnection({ newSession = false } = {}) {
  if (checking) {
    checkAgain ||= newSession;
    return checking;
  }
  checking = hostRequest("check_connection").finally(() => {
    checking = null;
    if (checkAgain) {
      checkAgain = false;
      checkConnection();
    }
  });
  return checking;
}

// --- the browser's DHIMS2 session ----------------------------------------------------------------

function originPattern(server) {
  return `${new URL(server).origin.replace(/:\d+$/, "")}/*`;
}

async function withSession(type, fields) {
  // Which server and which kind of sign-in come from the host's settings.
  if (NEEDS_SESSION.has(type) && !status.config) await hostRequest("get_config");
  const server = status.config?.server;
  if (!NEEDS_SESSION.has(type) || status.config?.auth !== "session" || !server) return { fields };
  if (!(await api.permissions.contains({ origins: [originPattern(server)] }))) {
    return { fields, missingPermission: true };
  }
  const cookie = await api.cookies.get({ url: serverBase(server), name: SESSION_COOKIE });
  return { fields: cookie ? { ...fields, session_cookie: cookie.value } : fields };
}

function isServerSessionCookie(cookie) {
  const server = status.config?.server;
  if (!server || cookie.name !== SESSION_COOKIE) return false;
  const hostname = new URL(server).hostname;
  const domain = cookie.domain.replace(/^\./, "");
  return hostname === domain || hostname.endsWith(`.${domain}`);
}

let cookieTimer = null;
api.cookies.onChanged.addListener(({ cookie, removed }) => {
  if (removed || !isServerSessionCookie(cookie)) return;
  // A new sign-in: hand the session to the host so waiting uploads go on without the popup.
  clearTimeout(cookieTimer);
  cookieTimer = setTimeout(() => host.ready && checkConnection({ newSession: true }), 300);
});

// --- requests to the host, and what their replies tell about the status ----------------------------

async function hostRequest(type, fields = {}) {
  await restored;
  const prepared = await withSession(type, fields);
  const reply = await host.request(type, prepared.fields);
  learnFrom(type, reply, prepared.missingPermission);
  return reply;
}

function learnFrom(type, reply, missingPermission) {
  if (reply.ok) {
    if (type === "get_config") update({ config: reply.config });
    if (type === "configure") {
      programs.clear(); // another server may hold other metadata
      update({ config: reply.config, connection: { state: "unknown" } });
    }
    if (type === "check_connection") {
      const { user, version, org_units: orgUnits, sender, pending } = reply;
      update({ connection: { state: "ok", user, version, org_units: orgUnits }, sender: { ...sender, pending } });
    }
    if (type === "list_batches") {
      const batches = reply.batches.slice(0, RECENT_BATCHES);
      update({ batches, sender: { ...status.sender, ...reply.sender } });
    }
    if (type === "upload" || type === "retry" || type === "cancel") upsertBatch(reply.batch);
    return;
  }
  const code = reply.error?.code;
  if (type === "check_connection" && code !== "HOST_DISCONNECTED" && code !== "HOST_UNAVAILABLE") {
    const state = code === "AUTH_REQUIRED" && missingPermission ? "permission_needed" : connectionStateFor(code);
    update({ connection: { state, error: reply.error } });
  }
}

// --- reading the Capture form ------------------------------------------------------------------

async function programFor(programUid) {
  if (!programs.has(programUid)) {
    const reply = await hostRequest("get_program", { program: programUid });
    if (!reply.ok) return reply;
    programs.set(programUid, reply);
  }
  return programs.get(programUid);
}

async function captureForm(tabId) {
  let results;
  try {
    results = await api.scripting.executeScript({ target: { tabId }, files: ["content.js"] });
  } catch {
    return localError(
      "NOT_A_CAPTURE_PAGE",
      "This tab cannot be read. Open the In-Patient form in DHIS2 Capture, then open the uploader again.",
    );
  }
  const captured = results?.[0]?.result;
  if (!captured?.ok) {
    return localError("NOT_A_CAPTURE_PAGE", captured?.message ?? "This tab is not a DHIS2 Capture form.");
  }
  const program = await programFor(captured.form.program);
  if (!program.ok) return program;
  const read = storedForm(captured.form, program.program.dataElements, captured.dateFormat);
  const form = { ...read, stage: program.program.programStage };
  return {
    ok: true,
    form,
    unreadable: captured.unreadable,
    orgUnitName: captured.orgUnitName,
    program: program.program,
    fromCache: program.from_cache,
    uploadedBefore: form.event ? null : await earlierUpload(form),
  };
}

async function uploadForm(form) {
  const earlier = form.event ? null : await earlierUpload(form);
  const reply = await hostRequest("upload", { form: earlier ? { ...form, event: earlier.event } : form });
  const record = reply.ok ? reply.records[0] : null;
  if (record && record.state !== "rejected") await rememberUpload(form, record.event);
  return reply;
}

// --- pages (popup, options) ----------------------------------------------------------------------

async function handle(message) {
  switch (message.action) {
    case "host":
      return hostRequest(message.type, message.fields ?? {});
    case "capture":
      if (!Number.isInteger(message.tabId)) return localError("NO_TAB", "No browser tab was given to read.");
      return captureForm(message.tabId);
    case "upload_form":
      if (typeof message.form?.values !== "object") return localError("NO_FORM", "No form was given to upload.");
      return uploadForm(message.form);
    case "reconnect":
      host.reconnectNow();
      return { ok: true };
    default:
      return localError("UNKNOWN_ACTION", `The extension has no action "${message.action}".`);
  }
}

// Only the extension's own pages (popup, options) may ask for actions: a content script in a
// web page carries our id too, and must not reach the host through the worker.
function fromOwnPage(sender) {
  return sender?.id === api.runtime.id && String(sender.url ?? "").startsWith(api.runtime.getURL(""));
}

api.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (!fromOwnPage(sender) || typeof message?.action !== "string") return false;
  handle(message).then(sendResponse, (error) => sendResponse(localError("EXTENSION_ERROR", String(error))));
  return true;
});

api.runtime.onConnect.addListener((port) => {
  if (!fromOwnPage(port.sender)) return;
  pages.add(port);
  port.onDisconnect.addListener(() => pages.delete(port));
  restored.then(() => {
    port.postMessage({ kind: "status", status });
    if (port.name !== "popup") return;
    const seenRejected = Object.fromEntries(status.batches.map((batch) => [batch.batch, batch.rejected]));
    update({ seenRejected });
    if (host.ready) {
      refreshEverything();
    } else {
      host.reconnectNow();
    }
  });
});

// Listening for browser start wakes this worker then, so pending uploads resume without a click.
api.runtime.onStartup.addListener(() => host.connect());
api.runtime.onInstalled.addListener(() => host.connect());
host.connect();
