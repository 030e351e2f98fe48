// "Upload a spreadsheet": the chosen CSV goes to the host as base64; its records then appear
// under Recent uploads like any other batch.
import { plural } from "../lib/status.js";
import { hostRequest } from "../lib/worker.js";

// The browser carries at most 64 MiB to the host, and base64 makes a file a third larger.
const MAX_FILE_BYTES = 40 * 1024 * 1024;

const fileInput = document.getElementById("sheet-file");
const uploadButton = document.getElementById("upload-sheet");
const message = document.getElementById("sheet-message");

function readAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** onUploaded(batchId) opens the new batch under Recent uploads. */
export function setup(onUploaded) {
  fileInput.addEventListener("change", () => {
    uploadButton.disabled = fileInput.files.length === 0;
    message.textContent = "";
  });
  uploadButton.addEventListener("click", async () => {
    const [file] = fileInput.files;
    if (file.size > MAX_FILE_BYTES) {
      message.textContent = `${file.name} is too large (over 40 MB): split it into smaller files.`;
      return;
    }
    uploadButton.disabled = true;
    message.textContent = `Reading ${file.name}…`;
    let content;
    try {
      content = await readAsBase64(file);
    } catch (error) {
      message.textContent = `${file.name} could not be read: ${error.message}`;
      uploadButton.disabled = false;
      return;
    }
    if (!content) {
      message.textContent = `${file.name} is empty.`;
      uploadButton.disabled = false;
      return;
    }
    const reply = await hostRequest("upload", { sheet: { name: file.name, content_base64: content } });
    uploadButton.disabled = false;
    if (!reply.ok) {
      message.textContent = `Not uploaded: ${reply.error.message}`;
      return;
    }
    const { total, rejected } = reply.batch;
    const problems = rejected ? `; ${plural(rejected, "record")} rejected: see the reasons below` : "";
    message.textContent = `${file.name}: ${plural(total, "record")} read${problems}.`;
    fileInput.value = "";
    uploadButton.disabled = true;
    onUploaded(reply.batch.batch);
  });
}
