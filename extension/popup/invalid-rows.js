// The validation table of a spreadsheet: each invalid row's number, the field at fault and the
// reason, a page at a time. One tbody per sheet row, so a row with several faults reads as one.
import { element } from "../lib/dom.js";
import { errorReason } from "./records.js";

const table = document.getElementById("invalid-rows");

export function clear() {
  for (const body of table.tBodies) body.remove();
}

/** Adds a page of the host's rejected records, [{row, errors}], below those shown. */
export function append(records) {
  for (const { row, errors } of records) {
    const lines = errors.map((error, index) =>
      element(
        "tr",
        {},
        index === 0 ? element("th", { scope: "rowgroup", rowspan: errors.length }, String(row)) : null,
        element("td", { className: "field" }, error.field || "—"),
        element("td", { className: "reason-cell" }, errorReason(error)),
      ),
    );
    table.append(element("tbody", { dataset: { row } }, ...lines));
  }
}
