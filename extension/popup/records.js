// How one record's state and its errors look, wherever the popup shows a record.
import { element } from "../lib/dom.js";
import { captureEventUrl } from "../lib/status.js";

export const STATE_LABELS = {
  queued: "Queued",
  sending: "Sending",
  importing: "Importing in DHIS2",
  created: "Created",
  updated: "Updated",
  rejected: "Rejected",
  failed: "Failed",
  cancelled: "Cancelled",
};

const SOURCE_LABELS = { local: "checked on this computer", dhis2: "DHIS2", dhims2: "uploader" };

export function stateBadge(state) {
  return element("span", { className: "state", dataset: { state } }, STATE_LABELS[state] ?? state);
}

export function isInDhis2(state) {
  return state === "created" || state === "updated";
}

export function captureLink(server, event) {
  return element(
    "a",
    { href: captureEventUrl(server, event), target: "_blank", rel: "noopener", className: "capture-link" },
    "Open in Capture",
  );
}

/** DHIS2's (or our) reason, the value it refused (unless shown beside it already) and where the
reason comes from. */
export function errorReason(error, { withValue = true } = {}) {
  const hasValue = withValue && error.value !== null && error.value !== undefined && error.value !== "";
  const value = hasValue ? ` (value: “${error.value}”)` : "";
  const source = SOURCE_LABELS[error.source] ?? error.source ?? "";
  return element(
    "span",
    { className: "reason" },
    `${error.message}${value}`,
    element("span", { className: "error-code" }, ` ${[error.code, source].filter(Boolean).join(", ")}`),
  );
}

/** A list item per error: the field's label the clerk knows, then the reason. */
export function errorList(errors) {
  return element(
    "ul",
    { className: "errors" },
    ...errors.map((error) =>
      element(
        "li",
        { dataset: { dataElement: error.dataElement ?? "" } },
        error.field ? element("strong", {}, `${error.field}: `) : null,
        errorReason(error),
      ),
    ),
  );
}
