// "Upload a spreadsheet": the host first checks the chosen file (`validate`: nothing is stored or
// sent) and the popup shows its invalid rows with the reasons. Then the clerk uploads the valid
// rows, or exports the invalid ones as CSV to correct them. Every request carries the same file,
// column layout (template) and sheet, so what is uploaded is what was checked.
import { element } from "../lib/dom.js";
import { plural } from "../lib/status.js";
import { hostRequest } from "../lib/worker.js";
import * as invalidRows from "./invalid-rows.js";

// The browser carries at most 64 MiB to the host, and base64 makes a file a third larger.
const MAX_FILE_BYTES = 40 * 1024 * 1024;
const PAGE_SIZE = 50;
const NO_TEMPLATE = "";
const NO_TEMPLATE_NOTE = "The first row names each column as the DHIS2 form names its field.";
// Long enough for the browser to start saving the file, however slow the disk.
const DOWNLOAD_URL_LIFETIME_MS = 60_000;

const fileInput = document.getElementById("sheet-file");
const templateSelect = document.getElementById("sheet-template");
const templateNote = document.getElementById("sheet-template-note");
const sheetChoice = document.getElementById("sheet-tab-choice");
const sheetSelect = document.getElementById("sheet-tab");
const message = document.getElementById("sheet-message");
const columnFaults = document.getElementById("sheet-columns");
const check = document.getElementById("sheet-check");
const scroll = document.getElementById("invalid-rows-scroll");
const moreButton = document.getElementById("invalid-rows-more");
const uploadButton = document.getElementById("upload-sheet");
const exportButton = document.getElementById("export-invalid");
const exportMessage = document.getElementById("sheet-export-message");

let templates = null; // name -> {name, title, description}, once the host has listed them
let chosen = null; // {name, content} of the file read
let checked = null; // the latest `validate` reply for the chosen file, layout and sheet
let generation = 0; // raised on every new choice: replies to older ones are dropped

function say(node, text, { error = false } = {}) {
  node.textContent = text;
  node.classList.toggle("error", error);
}

function readAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** The `sheet` every request sends: the file, the chosen layout and the chosen sheet. */
function sheetRequest(fields = {}) {
  const sheet = { name: chosen.name, content_base64: chosen.content };
  if (templateSelect.value !== NO_TEMPLATE) sheet.template = templateSelect.value;
  if (!sheetChoice.hidden && sheetSelect.value) sheet.sheet = sheetSelect.value;
  return { sheet, ...fields };
}

async function loadTemplates() {
  const reply = await hostRequest("list_templates");
  if (!reply.ok) return; // "Columns as in DHIS2" stays the only layout until the host answers
  templates = new Map(reply.templates.map((template) => [template.name, template]));
  const selected = templateSelect.value;
  templateSelect.replaceChildren(
    element("option", { value: NO_TEMPLATE }, "Columns as in DHIS2"),
    ...reply.templates.map((template) => element("option", { value: template.name }, template.title)),
  );
  templateSelect.value = templates.has(selected) ? selected : NO_TEMPLATE;
  showTemplateNote();
}

/** The chosen layout's description, less the title the list shows already. */
function showTemplateNote() {
  const template = templates?.get(templateSelect.value);
  if (!template) {
    templateNote.textContent = NO_TEMPLATE_NOTE;
    return;
  }
  const { title, description } = template;
  const rest = (description.startsWith(title) ? description.slice(title.length) : description).replace(/^[\s:;.]+/, "");
  templateNote.textContent = rest.charAt(0).toUpperCase() + rest.slice(1);
}

/** Offers the workbook's sheets when it has more than one; `current` is the one read. */
function showSheets(sheets, current) {
  if (!sheets || sheets.length < 2) return;
  if (sheetChoice.hidden) {
    sheetSelect.replaceChildren(...sheets.map((name) => element("option", { value: name }, name)));
    sheetChoice.hidden = false;
  }
  if (current) sheetSelect.value = current;
}

function forgetCheck() {
  checked = null;
  invalidRows.clear();
  check.hidden = true;
  moreButton.hidden = true;
  columnFaults.hidden = true;
  columnFaults.replaceChildren();
  uploadButton.disabled = true;
  uploadButton.textContent = "Upload valid rows";
  exportButton.disabled = true;
  say(exportMessage, "");
}

function forgetFile() {
  chosen = null;
  sheetChoice.hidden = true;
  sheetSelect.replaceChildren();
  forgetCheck();
}

function summary(reply) {
  const where = reply.sheet && reply.sheets.length > 1 ? ` (sheet “${reply.sheet}”)` : "";
  if (reply.total === 0) return `${chosen.name}${where} has no rows under its header.`;
  const counts = `${plural(reply.total, "row")}: ${reply.valid} valid, ${reply.rejected} invalid`;
  const invalid = reply.rejected ? " Invalid rows are never sent; the reasons are below." : "";
  return `${chosen.name}${where}: ${counts}. Nothing has been sent yet.${invalid}`;
}

async function runCheck() {
  const current = ++generation;
  forgetCheck();
  say(message, `Checking ${chosen.name}…`);
  const reply = await hostRequest("validate", sheetRequest({ page_size: PAGE_SIZE }));
  if (current !== generation) return;
  if (!reply.ok) {
    showProblem(reply.error);
    return;
  }
  checked = reply;
  showSheets(reply.sheets, reply.sheet);
  say(message, summary(reply));
  check.hidden = reply.rejected === 0;
  invalidRows.append(reply.records);
  showMore(reply.next_page);
  uploadButton.textContent = `Upload ${plural(reply.valid, "valid row")}`;
  uploadButton.disabled = reply.valid === 0;
  exportButton.disabled = reply.rejected === 0;
}

/** A file that could not be checked: the host's reason, each column at fault, and what to try. */
function showProblem(error) {
  const details = error.details ?? {};
  showSheets(details.sheets, details.sheet);
  const hints = [];
  if (details.columns?.length && templateSelect.value === NO_TEMPLATE && templates?.size) {
    hints.push("If the sheet has another layout, choose it under Column layout.");
  }
  if (details.sheets?.length > 1) hints.push("If the table is on another sheet, choose it under Sheet.");
  if (details.columns?.length) {
    const text = `${chosen.name}: these columns do not fit, so nothing can be sent.`;
    say(message, [text, ...hints].join(" "), { error: true });
    // Each message names its column already.
    columnFaults.replaceChildren(
      ...details.columns.map((column) => element("li", { dataset: { column: column.field } }, column.message)),
    );
    columnFaults.hidden = false;
    return;
  }
  say(message, [`${chosen.name} cannot be checked: ${error.message}`, ...hints].join(" "), { error: true });
}

function showMore(nextPage) {
  moreButton.hidden = nextPage === null || nextPage === undefined;
  moreButton.disabled = false;
  moreButton.dataset.page = moreButton.hidden ? "" : String(nextPage);
}

async function loadMore() {
  const current = generation;
  const hadFocus = document.activeElement === moreButton;
  moreButton.disabled = true; // which drops the keyboard focus to the page
  const page = Number(moreButton.dataset.page);
  const reply = await hostRequest("validate", sheetRequest({ page, page_size: PAGE_SIZE }));
  if (current !== generation) return;
  if (reply.ok) {
    invalidRows.append(reply.records);
    showMore(reply.next_page);
  } else {
    moreButton.disabled = false;
    say(exportMessage, `More invalid rows cannot be shown: ${reply.error.message}`, { error: true });
  }
  if (hadFocus) (moreButton.hidden ? scroll : moreButton).focus();
}

function download({ name, content_base64: content }) {
  const bytes = Uint8Array.from(atob(content), (character) => character.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: "text/csv" }));
  const link = element("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_LIFETIME_MS);
}

async function exportInvalid() {
  const current = generation;
  exportButton.disabled = true;
  say(exportMessage, "Writing the invalid rows…");
  // A page of rows comes with the export; the table has them already, so one keeps the reply small.
  const reply = await hostRequest("validate", sheetRequest({ export: true, page_size: 1 }));
  if (current !== generation) return;
  exportButton.disabled = false;
  if (!reply.ok) {
    say(exportMessage, `Not exported: ${reply.error.message}`, { error: true });
    return;
  }
  download(reply.export);
  say(
    exportMessage,
    `Saving ${reply.export.name}: ${plural(reply.export.rows, "invalid row")}, each with the reason. ` +
      "Correct them there, then choose that file to upload them.",
  );
}

async function uploadValid(onUploaded) {
  generation += 1; // pages and exports still on their way belong to a check now done with
  const name = chosen.name;
  for (const control of [fileInput, templateSelect, sheetSelect, uploadButton, exportButton, moreButton]) {
    control.disabled = true;
  }
  uploadButton.textContent = "Uploading…";
  const reply = await hostRequest("upload", sheetRequest());
  for (const control of [fileInput, templateSelect, sheetSelect, moreButton]) control.disabled = false;
  if (!reply.ok) {
    say(message, `${name} was not uploaded: ${reply.error.message}`, { error: true });
    uploadButton.textContent = `Upload ${plural(checked.valid, "valid row")}`;
    uploadButton.disabled = false;
    exportButton.disabled = checked.rejected === 0;
    return;
  }
  const { total, rejected } = reply.batch;
  const notSent = rejected ? `; ${plural(rejected, "invalid row")} not sent (reasons under Recent uploads)` : "";
  fileInput.value = "";
  forgetFile();
  say(message, `${name}: ${plural(total - rejected, "row")} on the way to DHIS2${notSent}.`);
  onUploaded(reply.batch.batch);
}

async function chooseFile() {
  const current = ++generation;
  forgetFile();
  say(message, "");
  const [file] = fileInput.files;
  if (!file) return;
  if (file.size > MAX_FILE_BYTES) {
    say(message, `${file.name} is too large (over 40 MB): split it into smaller files.`, { error: true });
    return;
  }
  say(message, `Reading ${file.name}…`);
  let content;
  try {
    content = await readAsBase64(file);
  } catch (error) {
    if (current === generation) say(message, `${file.name} could not be read: ${error.message}`, { error: true });
    return;
  }
  if (current !== generation) return;
  if (!content) {
    say(message, `${file.name} is empty.`, { error: true });
    return;
  }
  chosen = { name: file.name, content };
  if (!templates) await loadTemplates();
  if (current === generation) await runCheck();
}

/** onUploaded(batchId) opens the new batch under Recent uploads. */
export function setup(onUploaded) {
  showTemplateNote();
  loadTemplates();
  fileInput.addEventListener("change", chooseFile);
  templateSelect.addEventListener("change", () => {
    showTemplateNote();
    if (chosen) runCheck();
  });
  sheetSelect.addEventListener("change", () => chosen && runCheck());
  moreButton.addEventListener("click", loadMore);
  exportButton.addEventListener("click", exportInvalid);
  uploadButton.addEventListener("click", () => uploadValid(onUploaded));
}
