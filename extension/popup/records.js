// How one record's state and its errors look, wherever the popup shows a record.
import { element } from "../lib/dom.js";
import { captureEventUrl } from "../lib/status.js";

export const STATE_LABELS = {
  queued: "Queued on this computer",
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

/** DHIS2's (or our) reason, the value it refused (unless shown already, beside it or in the
reason itself) and, behind the details toggle, its code and where the reason comes from. */
export function errorReason(error, { withValue = true } = {}) {
  const value = error.value === null || error.value === undefined ? "" : String(error.value);
  const quoted = withValue && value !== "" && !String(error.message).includes(value);
  const source = SOURCE_LABELS[error.source] ?? error.source ?? "";
  return element(
    "span",
    { className: "reason" },
    `${error.message}${quoted ? ` (value: “${value}”)` : ""}`,
    element("span", { className: "error-code details-only" }, ` ${[error.code, source].filter(Boolean).join(", ")}`),
  );
}

/** A "Show details" button that shows or hides the `.details-only` parts inside `container`. */
export function detailsToggle(container) {
  const button = element("button", { type: "button", className: "details-toggle", "aria-expanded": "false" });
  const show = (shown) => {
    container.classList.toggle("details-shown", shown);
    button.setAttribute("aria-expanded", String(shown));
    button.textContent = shown ? "Hide details" : "Show details";
  };
  button.addEventListener("click", () => show(!container.classList.contains("details-shown")));
  show(false);
  return button;
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
