// The one native port to `dhims2-host`: hello first, requests matched to replies by id, pushed
// updates passed on, and a reconnect with growing pauses whenever the port closes.
import { api } from "./browser.js";

export const HOST_NAME = "org.dhims2.uploader";
export const PROTOCOL_VERSION = 1;

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 30_000;
// Reading and checking a large sheet takes the host longer than any other request.
const TIMEOUT_MS = { upload: 180_000, validate: 180_000 };

// Chromium and Firefox word the same port failures differently; `kind` picks the fix to show.
const PORT_FAILURES = [
  { pattern: /not found|no such native application/i, kind: "missing" },
  { pattern: /forbidden|not allowed/i, kind: "forbidden" },
  { pattern: /has exited/i, kind: "exited" },
];

export function localError(code, message, details = {}) {
  return { ok: false, error: { code, message, details } };
}

function portFailure(message) {
  const known = PORT_FAILURES.find(({ pattern }) => pattern.test(message));
  return { kind: known ? known.kind : "broken", message };
}

export class NativeHost {
  /**
   * onState({state: "connecting" | "ready" | "unavailable", hello?, problem?}) follows the port;
   * onPush(message) gets every update the host sends without an id.
   */
  constructor({ onState, onPush }) {
    this.onState = onState;
    this.onPush = onPush;
    this.port = null;
    this.state = { state: "unavailable", problem: { kind: "closed", message: "" } };
    this.pending = new Map(); // request id -> {resolve, timer}
    this.waitingForHello = []; // requests asked for before the host said hello
    this.nextId = 1;
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.retryAtOnce = false;
  }

  get ready() {
    return this.state.state === "ready";
  }

  connect() {
    if (this.port) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState({ state: "connecting" });
    let port;
    try {
      port = api.runtime.connectNative(HOST_NAME);
    } catch (error) {
      this.fail(portFailure(error.message));
      return;
    }
    this.port = port;
    port.onMessage.addListener((message) => this.receive(port, message));
    port.onDisconnect.addListener(() => {
      // Chromium reports why in runtime.lastError, Firefox in port.error.
      const reason = port.error?.message ?? api.runtime.lastError?.message ?? "";
      this.closed(port, reason || "The uploader program closed the connection.");
    });
  }

  /** Try now instead of waiting out the pause, e.g. when the user opens the popup. */
  reconnectNow() {
    this.retryMs = FIRST_RETRY_MS;
    // An attempt still under way may have started before the fix (say, the install) was made:
    // if it fails, try again at once rather than after the pause.
    if (this.port && !this.ready) this.retryAtOnce = true;
    this.connect();
  }

  /** Resolves with the host's reply envelope, or a local one (never rejects). */
  request(type, fields = {}) {
    return new Promise((resolve) => {
      const id = `r-${this.nextId++}`;
      const timeoutMs = TIMEOUT_MS[type] ?? DEFAULT_TIMEOUT_MS;
      const timer = setTimeout(() => {
        this.forget(id);
        resolve(localError("TIMEOUT", `The uploader program did not answer "${type}" in time.`));
      }, timeoutMs);
      const send = () => {
        this.pending.set(id, { resolve, timer });
        try {
          this.port.postMessage({ ...fields, id, type });
        } catch (error) {
          // e.g. a message over the browser's 64 MiB limit: the port itself stays usable.
          this.forget(id);
          clearTimeout(timer);
          resolve(localError("SEND_FAILED", `Could not send "${type}" to the uploader program: ${error.message}`));
        }
      };
      if (this.ready) {
        send();
      } else if (this.state.state === "connecting") {
        this.waitingForHello.push({ id, send, resolve, timer });
      } else {
        clearTimeout(timer);
        resolve(this.unavailableError());
      }
    });
  }

  unavailableError() {
    const problem = this.state.problem ?? { kind: "closed", message: "" };
    return localError("HOST_UNAVAILABLE", problem.message || "The uploader program is not running.", {
      problem: problem.kind,
    });
  }

  receive(port, message) {
    if (port !== this.port || message === null || typeof message !== "object") return;
    if (message.type === "hello" && !("id" in message)) {
      this.greeted(message);
      return;
    }
    if (typeof message.id === "string" && this.pending.has(message.id)) {
      const { resolve, timer } = this.pending.get(message.id);
      this.pending.delete(message.id);
      clearTimeout(timer);
      resolve(message);
      return;
    }
    if (!("id" in message)) this.onPush(message);
  }

  greeted(hello) {
    if (hello.protocol !== PROTOCOL_VERSION) {
      const message =
        `The uploader program speaks protocol ${hello.protocol}; this extension needs ` + `${PROTOCOL_VERSION}.`;
      const port = this.port;
      this.closed(port, message, "incompatible");
      port.disconnect();
      return;
    }
    this.retryMs = FIRST_RETRY_MS;
    this.setState({ state: "ready", hello });
    const waiting = this.waitingForHello.splice(0);
    for (const request of waiting) request.send();
  }

  closed(port, reason, kind = null) {
    if (port !== this.port) return;
    this.port = null;
    this.fail(kind ? { kind, message: reason } : portFailure(reason));
  }

  fail(problem) {
    this.setState({ state: "unavailable", problem });
    const failure = localError("HOST_DISCONNECTED", problem.message, { problem: problem.kind });
    for (const { resolve, timer } of this.pending.values()) {
      clearTimeout(timer);
      resolve(failure);
    }
    this.pending.clear();
    for (const { resolve, timer } of this.waitingForHello.splice(0)) {
      clearTimeout(timer);
      resolve(failure);
    }
    this.retryTimer = setTimeout(() => this.connect(), this.retryAtOnce ? 0 : this.retryMs);
    this.retryAtOnce = false;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
  }

  forget(id) {
    this.pending.delete(id);
    this.waitingForHello = this.waitingForHello.filter((request) => request.id !== id);
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }
}
