// The popup: the connection line with its fix, this form, a spreadsheet, and recent uploads.
// It renders the worker's last known status from storage at once, then follows live updates.
import { api } from "./lib/browser.js";
import { connectionLine } from "./lib/connection-line.js";
import { listen } from "./lib/worker.js";
import * as batches from "./popup/batches.js";
import * as form from "./popup/form.js";
import * as sheet from "./popup/sheet.js";

const renderConnection = connectionLine({
  onSettled: () => performance.mark("status-rendered"), // read by bench/popup.py
});

function onStatus(status) {
  renderConnection(status);
  form.setStatus(status);
  batches.render(status.batches);
}

function onPush(message) {
  form.onPush(message);
  batches.onPush(message);
}

async function start() {
  document.getElementById("open-settings").addEventListener("click", () => api.runtime.openOptionsPage());
  const stored = await api.storage.session.get("status");
  if (stored.status) onStatus(stored.status);
  listen({ name: "popup", onStatus, onPush });
  form.setup();
  sheet.setup((batchId) => batches.expand(batchId));
}

start();
