// "Recent uploads": one line per batch with its progress; opened, a batch shows each record's
// patient and admission, state and reasons, Retry failed, and behind "Show details" its DHIS2
// import jobs with the server's own messages and the error codes.
import { element } from "../lib/dom.js";
import { hostRequest } from "../lib/worker.js";
import { captureLink, detailsToggle, errorList, isInDhis2, stateBadge } from "./records.js";

const PAGE_SIZE = 50;
const COUNTED = [
  ["created", "created"],
  ["updated", "updated"],
  ["rejected", "rejected"],
  ["failed", "failed"],
  ["cancelled", "cancelled"],
  ["pending", "on their way"],
];

const list = document.getElementById("batches");
const emptyNote = document.getElementById("no-batches");
const items = new Map(); // batch id -> {summary, li, toggle, progress, counts, detail, open}
let expandWhenShown = null;

function countsText(summary) {
  const parts = COUNTED.filter(([key]) => summary[key] > 0).map(([key, label]) => `${summary[key]} ${label}`);
  return parts.join(" · ") || "no records";
}

function tone(summary) {
  if (summary.failed || summary.rejected) return "attention";
  return summary.pending ? "busy" : "done";
}

function createItem(summary) {
  const detailId = `batch-${summary.batch}`;
  const item = { summary, open: false };
  item.title = element("span", { className: "batch-title" });
  item.counts = element("span", { className: "batch-counts" });
  item.toggle = element(
    "button",
    { type: "button", className: "batch-toggle", "aria-expanded": "false", "aria-controls": detailId },
    item.title,
    item.counts,
  );
  item.progress = element("progress", { className: "batch-progress" });
  item.detail = element("div", { id: detailId, className: "batch-detail", hidden: true });
  item.li = element(
    "li",
    { className: "batch", dataset: { batch: summary.batch } },
    item.toggle,
    item.progress,
    item.detail,
  );
  item.toggle.addEventListener("click", () => (item.open ? close(item) : open(item)));
  items.set(summary.batch, item);
  return item;
}

function updateItem(item, summary) {
  const failedChanged = item.summary.failed !== summary.failed;
  item.summary = summary;
  const when = new Date(summary.created_at * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  item.title.textContent = `${summary.source} · ${when}`;
  item.counts.textContent = countsText(summary);
  const finished = summary.total - summary.pending;
  item.progress.max = Math.max(summary.total, 1);
  item.progress.value = finished;
  item.progress.setAttribute("aria-label", `${summary.source}: ${finished} of ${summary.total} records finished`);
  item.li.dataset.tone = tone(summary);
  if (item.open && failedChanged) renderRetry(item);
}

export function render(batches) {
  emptyNote.hidden = batches.length > 0;
  const shownIds = new Set(batches.map((summary) => summary.batch));
  for (const id of items.keys()) if (!shownIds.has(id)) items.delete(id);
  const ordered = batches.map((summary) => {
    const item = items.get(summary.batch) ?? createItem(summary);
    updateItem(item, summary);
    return item.li;
  });
  // Re-inserting nodes would drop the keyboard focus: only reorder when the order changed.
  const current = Array.from(list.children);
  if (current.length !== ordered.length || current.some((node, index) => node !== ordered[index])) {
    list.replaceChildren(...ordered);
  }
  if (expandWhenShown && items.has(expandWhenShown)) expand(expandWhenShown);
}

/** Opens a batch now, or as soon as it appears in the list. */
export async function expand(batchId) {
  const item = items.get(batchId);
  expandWhenShown = item ? null : batchId;
  if (item && !item.open) await open(item);
}

function close(item) {
  item.open = false;
  item.detail.hidden = true;
  item.toggle.setAttribute("aria-expanded", "false");
}

async function open(item) {
  item.open = true;
  item.toggle.setAttribute("aria-expanded", "true");
  item.detail.hidden = false;
  item.detail.replaceChildren(element("p", { className: "message" }, "Loading…"));
  await loadDetail(item);
}

/** A page of records and, asked of the host each time and kept only in the page, whose they are. */
async function recordsPage(item, page) {
  const fields = { batch: item.summary.batch, page, page_size: PAGE_SIZE };
  const [reply, patients] = await Promise.all([hostRequest("get_batch", fields), hostRequest("get_patients", fields)]);
  if (reply.ok && patients.ok) for (const patient of patients.records) item.patients.set(patient.row, patient);
  return reply;
}

async function loadDetail(item) {
  item.patients = new Map();
  const reply = await recordsPage(item, 0);
  if (!reply.ok) {
    item.detail.replaceChildren(element("p", { className: "message error" }, reply.error.message));
    return;
  }
  item.records = new Map();
  item.jobs = new Map();
  item.retry = element("div", { className: "actions" });
  item.recordList = element("ul", { className: "records" });
  item.jobList = element("ul", { className: "jobs" });
  item.more = element("div");
  item.detail.replaceChildren(
    item.retry,
    element("h3", {}, "Records"),
    item.recordList,
    item.more,
    detailsToggle(item.detail),
    element("div", { className: "details-only" }, element("h3", {}, "DHIS2 import jobs"), item.jobList),
  );
  renderRetry(item);
  addRecords(item, reply.records, reply.next_page);
  for (const job of reply.jobs) showJob(item, job);
  if (reply.jobs.length === 0) item.jobList.append(element("li", { className: "message" }, "None yet."));
}

function renderRetry(item) {
  const { failed } = item.summary;
  item.retry?.replaceChildren(
    failed
      ? element(
          "button",
          { type: "button", className: "retry", onclick: () => retry(item) },
          `Retry failed (${failed})`,
        )
      : "",
  );
}

async function retry(item) {
  const reply = await hostRequest("retry", { batch: item.summary.batch });
  if (!reply.ok) {
    item.retry.replaceChildren(element("p", { className: "message error" }, reply.error.message));
    return;
  }
  await loadDetail(item);
}

function addRecords(item, records, nextPage) {
  for (const record of records) showRecord(item, record);
  item.more.replaceChildren();
  if (nextPage !== null && nextPage !== undefined) {
    const more = element("button", { type: "button" }, "Show more records");
    more.addEventListener("click", async () => {
      more.disabled = true;
      const reply = await recordsPage(item, nextPage);
      if (reply.ok) addRecords(item, reply.records, reply.next_page);
      else item.more.replaceChildren(element("p", { className: "message error" }, reply.error.message));
    });
    item.more.append(more);
  }
}

/** "VRH/0042, admitted 2025-03-01", or the row when this computer no longer keeps the values. */
function whose(item, row) {
  const patient = item.patients.get(row);
  if (!patient?.patient_number) return `Row ${row}`;
  const admitted = patient.admission_date ? `, admitted ${patient.admission_date}` : "";
  return `${patient.patient_number}${admitted}`;
}

function showRecord(item, record) {
  const li = element(
    "li",
    { className: "record", dataset: { row: record.row, state: record.state } },
    element(
      "div",
      { className: "record-line" },
      element("span", { className: "patient", title: `Row ${record.row}` }, whose(item, record.row)),
      stateBadge(record.state),
      isInDhis2(record.state) ? captureLink(item.summary.server, record.event) : null,
    ),
    record.errors?.length ? errorList(record.errors) : null,
  );
  const shown = item.records.get(record.row);
  if (shown) shown.replaceWith(li);
  else item.recordList.append(li);
  item.records.set(record.row, li);
  if (record.job && !item.jobs.has(record.job))
    showJob(item, { id: record.job, state: null, messages: [], error: null });
}

function showJob(item, job) {
  if (item.jobs.size === 0) item.jobList.replaceChildren();
  const li = element(
    "li",
    { className: "job", dataset: { job: job.id } },
    element("div", {}, "Job ", element("code", {}, job.id), job.state ? ` · ${job.state}` : ""),
    job.messages.length
      ? element("ol", { className: "job-messages" }, ...job.messages.map((text) => element("li", {}, text)))
      : null,
    job.error ? element("p", { className: "message error" }, job.error) : null,
  );
  const shown = item.jobs.get(job.id);
  if (shown) shown.li.replaceWith(li);
  else item.jobList.append(li);
  item.jobs.set(job.id, { li, job });
}

export function onPush(pushed) {
  if (pushed.type === "record.state") {
    const item = items.get(pushed.batch);
    if (item?.open && item.records?.has(pushed.row)) showRecord(item, pushed);
  } else if (pushed.type === "job.progress") {
    for (const item of items.values()) {
      const shown = item.open ? item.jobs?.get(pushed.job) : null;
      if (shown) showJob(item, { ...shown.job, messages: pushed.messages });
    }
  }
}
