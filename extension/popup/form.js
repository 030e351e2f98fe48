// "This form": read the Capture tab, show what will be uploaded with the program's labels and,
// checked at once by the host, any problem next to its field; upload it, then follow the record
// until DHIS2 has it.
import { api } from "../lib/browser.js";
import { element } from "../lib/dom.js";
import { describe, plural } from "../lib/status.js";
import { ask, hostRequest } from "../lib/worker.js";
import {
  STATE_LABELS,
  captureLink,
  detailsToggle,
  errorList,
  errorReason,
  isInDhis2,
  stateBadge,
} from "./records.js";

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
const REPORT_DATE = "occurredAt";
const RECENT_PUSHES = 20;

const message = document.getElementById("form-message");
const preview = document.getElementById("form-preview");
const previewArea = document.getElementById("form-preview-area");
const result = document.getElementById("form-result");
const uploadButton = document.getElementById("upload-form");
const readButton = document.getElementById("read-form");
const card = document.getElementById("form-card");
const detailsButton = detailsToggle(card);

let captured = null; // the worker's capture reply: {form, program, unreadable, orgUnitName, uploadedBefore}
let problems = []; // what the host's dry run found wrong with the form as read
let upload = null; // {batch, row, server} once this form is uploaded
let shownRecord = null; // the uploaded record's latest state
let connectionState = null; // the status line's state: what a queued record waits for
let recentRecordStates = [];

export function setup() {
  detailsButton.hidden = true;
  result.after(detailsButton);
  readButton.addEventListener("click", read);
  uploadButton.addEventListener("click", uploadForm);
  read();
}

export function setStatus(status) {
  const state = describe(status).state;
  const changed = connectionState !== state;
  connectionState = state;
  // A record waiting to be sent says why it waits: sign-in, DHIMS2 offline, ...
  if (changed && shownRecord && ["queued", "sending"].includes(shownRecord.state)) showRecord(shownRecord);
}

/** The tab to read: `?tab=<id>` when the popup is opened as a page, else the active tab. */
async function targetTab() {
  const asked = new URLSearchParams(window.location.search).get("tab");
  if (asked) return Number(asked);
  const [tab] = await api.tabs.query({ active: true, currentWindow: true });
  return tab?.id ?? null;
}

async function read() {
  captured = null;
  problems = [];
  upload = null;
  shownRecord = null;
  previewArea.hidden = true;
  result.hidden = true;
  uploadButton.disabled = true;
  uploadButton.textContent = "Upload this form";
  message.textContent = "Reading the form…";
  const tabId = await targetTab();
  const reply = tabId === null ? null : await ask("capture", { tabId });
  if (!reply?.ok) {
    message.textContent = reply?.error?.message ?? "Open the In-Patient form in DHIS2 Capture first.";
    return;
  }
  captured = reply;
  renderPreview([]);
  await checkForm(reply);
}

/** The host's dry run of the upload: the same checks, so problems show before Upload is pressed. */
async function checkForm(read) {
  const checked = await hostRequest("validate", { form: read.form });
  // Unchecked (e.g. DHIMS2 unreachable) the upload itself still checks, and says what is wrong.
  if (captured !== read || !checked.ok || checked.rejected === 0) return;
  problems = withFieldKeys(checked.records[0].errors);
  showResult("problems", "Not uploaded yet: these need correcting first.", problems);
}

function fieldKeys() {
  return new Set([REPORT_DATE, "orgUnit", ...(captured?.program.dataElements.map((d) => d.uid) ?? [])]);
}

function reportDateProblem(occurredAt) {
  if (!occurredAt) return "The report date is empty: fill it in on the Capture form.";
  if (!ISO_DATE.test(occurredAt)) return `“${occurredAt}” is not a date as YYYY-MM-DD.`;
  return null;
}

// Capture shows yes/no fields as Yes and No; the host gets "true" / "false".
function shownValue(dataElement, value) {
  if (dataElement.valueType === "BOOLEAN" || dataElement.valueType === "TRUE_ONLY") {
    return { true: "Yes", false: "No" }[value] ?? value;
  }
  return value;
}

function previewRow(key, label, value, errors, compulsory = false) {
  return element(
    "tr",
    { dataset: { field: key }, className: errors.length ? "has-error" : null },
    element(
      "th",
      { scope: "row" },
      label,
      compulsory ? element("span", { className: "required", title: "required" }, " *") : null,
    ),
    element(
      "td",
      {},
      element("span", { className: value ? "value" : "value empty" }, value || "—"),
      ...errors.map((error) =>
        element("div", { className: "field-error", role: "note" }, errorReason(error, { withValue: false })),
      ),
    ),
  );
}

const UNREADABLE = { message: "Could not be read from the Capture page.", source: "local" };

/** Errors go next to their field; those that belong to no field are listed in the result box. */
function renderPreview(errors) {
  const { form, program, unreadable, orgUnitName, uploadedBefore, fromCache } = captured;
  // A field the reader cannot read is named, and stops the upload: it would arrive empty.
  const errorsFor = (key) => [
    ...errors.filter((error) => error.dataElement === key),
    ...(unreadable.includes(key) ? [UNREADABLE] : []),
  ];
  const dateProblem = reportDateProblem(form.occurredAt);
  const dateErrors = errorsFor(REPORT_DATE);
  if (dateProblem) dateErrors.push({ message: dateProblem, source: "local" });
  const rows = [
    previewRow(REPORT_DATE, "Report date", form.occurredAt, dateErrors, true),
    previewRow("orgUnit", "Organisation unit", orgUnitName || form.orgUnit, errorsFor("orgUnit")),
    ...program.dataElements.map((dataElement) =>
      previewRow(
        dataElement.uid,
        dataElement.label,
        shownValue(dataElement, form.values[dataElement.uid]),
        errorsFor(dataElement.uid),
        dataElement.compulsory,
      ),
    ),
  ];
  preview.tBodies[0].replaceChildren(...rows);
  previewArea.hidden = false;
  preview.querySelector("tr.has-error")?.scrollIntoView({ block: "center" }); // clear of the sticky header
  const notes = [`${program.programName}: check the values, then upload.`];
  if (problems.length) {
    notes[0] =
      `${plural(problems.length, "problem")}, marked next to the fields: correct them in Capture, ` +
      "then press Read the form again.";
  }
  if (unreadable.length) {
    const labels = new Map(program.dataElements.map((dataElement) => [dataElement.uid, dataElement.label]));
    const names = unreadable.map((uid) => labels.get(uid) ?? uid).join(", ");
    notes.unshift(`The uploader cannot read ${names} on this Capture page, so it cannot upload this form.`);
  }
  if (fromCache) notes.push("DHIMS2 cannot be reached: labels come from the last visit.");
  if (uploadedBefore) {
    const when = new Date(uploadedBefore.at).toLocaleString();
    notes.push(`This same form was uploaded on ${when}; uploading again updates that event, it adds no copy.`);
  }
  message.textContent = notes.join(" ");
  offerDetails();
  uploadButton.disabled = Boolean(dateProblem) || unreadable.length > 0 || problems.length > 0 || upload !== null;
}

function withFieldKeys(errors) {
  // Errors about the report date name no data element; the preview row for it is "occurredAt".
  return errors.map((error) =>
    !error.dataElement && /occurred|report date/i.test(`${error.field ?? ""}`)
      ? { ...error, dataElement: REPORT_DATE }
      : error,
  );
}

async function uploadForm() {
  uploadButton.disabled = true;
  uploadButton.textContent = "Uploading…";
  const reply = await ask("upload_form", { form: captured.form });
  if (!reply.ok) {
    uploadButton.textContent = "Upload this form";
    const field = reply.error.details?.field ?? "";
    const error = { ...reply.error, source: "dhims2", field: field.startsWith("form.") ? field.slice(5) : field };
    showResult("error", "Not uploaded.", withFieldKeys([error]));
    return;
  }
  const [record] = reply.records;
  upload = { batch: reply.batch.batch, row: record.row, server: reply.batch.server };
  // Updates travel apart from the reply and may have overtaken it.
  const overtaken = recentRecordStates.filter((pushed) => isThisUpload(pushed)).at(-1);
  showRecord(overtaken ?? record);
}

function resultText(record) {
  switch (record.state) {
    case "queued":
    case "sending":
      if (connectionState === "sign_in_needed") return "Waiting: sign in to DHIMS2 and it goes by itself.";
      if (connectionState === "offline") return "Waiting: DHIMS2 cannot be reached; it goes when the server is back.";
      return "Waiting to be sent to DHIS2…";
    case "importing":
      return "DHIS2 is importing it…";
    case "created":
      return "DHIS2 has this event now.";
    case "updated":
      return "DHIS2 already had this event: it was updated, nothing was added twice.";
    case "rejected":
      return (
        `Not accepted: ${plural(record.errors?.length ?? 0, "problem")}, marked next to the fields above. ` +
        "Correct them in Capture, then press Read the form again."
      );
    case "failed":
      return "DHIS2 did not import it. Use Retry failed under Recent uploads.";
    default:
      return STATE_LABELS[record.state] ?? record.state;
  }
}

// What the upload button says once pressed: "Uploaded" only when DHIS2 has the event.
const UPLOAD_BUTTON = {
  queued: "Queued on this computer",
  sending: "Sending…",
  importing: "Sent, DHIS2 is importing",
  created: "Uploaded",
  updated: "Uploaded",
  rejected: "Upload this form",
  failed: "Not imported",
};

function showRecord(record) {
  shownRecord = record;
  uploadButton.textContent = UPLOAD_BUTTON[record.state] ?? STATE_LABELS[record.state] ?? record.state;
  const errors = withFieldKeys(record.errors ?? []);
  showResult(record.state, resultText(record), errors);
  if (isInDhis2(record.state)) result.append(captureLink(upload.server, record.event));
  // The DHIS2 job is for whoever follows it up on the server: behind "Show details".
  if (record.job) {
    result.append(element("p", { className: "details-only job-id" }, "DHIS2 job ", element("code", {}, record.job)));
  }
  offerDetails();
}

/** "Show details" only when there is something behind it: error codes or a DHIS2 job. */
function offerDetails() {
  detailsButton.hidden = !card.querySelector(".error-code, .job-id");
}

function showResult(state, text, errors) {
  const onFields = fieldKeys();
  if (captured) renderPreview(errors.filter((error) => onFields.has(error.dataElement)));
  const elsewhere = errors.filter((error) => !onFields.has(error.dataElement));
  // Problems on fields are marked beside them; a box is needed only for the others.
  if (state === "problems" && elsewhere.length === 0) return;
  result.dataset.state = state;
  result.replaceChildren(element("p", {}, state in STATE_LABELS ? stateBadge(state) : null, " ", text));
  if (elsewhere.length) result.append(errorList(elsewhere));
  result.hidden = false;
  offerDetails();
}

function isThisUpload(pushed) {
  return upload !== null && pushed.batch === upload.batch && pushed.row === upload.row;
}

export function onPush(pushed) {
  if (pushed.type !== "record.state") return;
  recentRecordStates = [...recentRecordStates.slice(-(RECENT_PUSHES - 1)), pushed];
  if (isThisUpload(pushed)) showRecord(pushed);
}
