// Reads the event form on a DHIS2 Capture page when the uploader asks (it is injected with
// chrome.scripting and its value is the result). It only reads: it never fills or submits the form.
// docs/CAPTURE.md describes the markup of both Capture generations that it reads.
(async () => {
  const UID = /^[A-Za-z][A-Za-z0-9]{10}$/;
  const FIELD_PREFIX = "form-field-";
  const CAPTURE_PATH = "/dhis-web-capture/";
  // The chosen option's name: @dhis2/ui SimpleSingleSelect (Capture v106 on), react-select v1
  // (react-virtualized-select, Capture up to v101).
  const CHOSEN_OPTION = ".selected-option-label, .Select-value-label";
  // A field shown read-only (a viewed event) has its value as text beside the label.
  const SHOWN_VALUE = '[class*="inputContainer"]';

  function routeParameters() {
    const query = window.location.hash.split("?")[1] ?? "";
    return new URLSearchParams(query);
  }

  function text(node) {
    return node ? node.textContent.replace(/\s+/g, " ").trim() : "";
  }

  /** The server's address: DHIS2 serves Capture at <server>/dhis-web-capture/. */
  function serverBase() {
    const { origin, pathname } = window.location;
    const at = pathname.indexOf(CAPTURE_PATH);
    return at >= 0 ? origin + pathname.slice(0, at) : null;
  }

  // Firefox gives a content script's own fetch none of the page's cookies; `content.fetch`
  // asks as the page does. Chromium's content-script fetch already does.
  const pageFetch = globalThis.content?.fetch ? globalThis.content.fetch.bind(globalThis.content) : fetch;

  async function serverJson(path) {
    const base = serverBase();
    if (!base) return null;
    try {
      const response = await pageFetch(`${base}/api/${path}`, {
        credentials: "include",
        headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" },
      });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  /** The date format Capture shows dates in: the server's setting (system/info dateFormat). */
  async function dateFormat() {
    const info = await serverJson("system/info?fields=dateFormat");
    if (info?.dateFormat) return info.dateFormat;
    // Offline: Capture writes the format as the date fields' placeholder.
    return document.querySelector('[data-test="dhis2-uiwidgets-calendar-inputfield"] input')?.placeholder ?? null;
  }

  /** The value a field shows, as text, or null when the field has no markup this reader knows. */
  function fieldValue(wrapper, uid) {
    const yes = wrapper.querySelector(`input[id="${uid}Yes"]`);
    const no = wrapper.querySelector(`input[id="${uid}No"]`);
    if (yes || no) {
      if (yes?.checked) return "true";
      return no?.checked ? "false" : "";
    }
    const radios = [...wrapper.querySelectorAll('input[type="radio"]')];
    if (radios.length) {
      // Options shown as radios: the name beside the chosen one, as for a dropdown.
      const chosen = radios.find((radio) => radio.checked);
      return chosen ? text(chosen.closest("label")) : "";
    }
    const checkbox = wrapper.querySelector('input[type="checkbox"]');
    if (checkbox) return checkbox.checked ? "true" : "";
    if (wrapper.querySelector('[role="combobox"]')) return text(wrapper.querySelector(CHOSEN_OPTION));
    const boxes = wrapper.querySelectorAll('input:not([type="radio"]):not([type="checkbox"]), textarea');
    // Several boxes (coordinates, an age as years, months and days) make one value this reader
    // does not know how to put together.
    if (boxes.length > 1) return null;
    if (boxes.length === 1) return boxes[0].value.trim();
    const shown = wrapper.querySelector(SHOWN_VALUE);
    return shown ? text(shown) : null;
  }

  function capturedValues() {
    const values = {};
    const unreadable = [];
    for (const wrapper of document.querySelectorAll(`div[data-test^="${FIELD_PREFIX}"]`)) {
      const uid = wrapper.dataset.test.slice(FIELD_PREFIX.length);
      if (!UID.test(uid)) continue;
      const value = fieldValue(wrapper, uid);
      if (value === null) unreadable.push(uid);
      else if (value !== "") values[uid] = value;
    }
    return { values, unreadable };
  }

  /** The org unit's name without its label or required mark, wherever this Capture shows it. */
  function orgUnitName() {
    const field = document.querySelector('div[data-test^="dataentry-field-orgUnit"]');
    const chip = field?.querySelector('[data-test="dhis2-uicore-chip"]');
    if (chip) return text(chip);
    const shown = field?.querySelector(SHOWN_VALUE);
    if (shown) return text(shown);
    return text(document.querySelector('[data-test="org-unit-selector-container"] .value'));
  }

  /** Program and org unit: in the address of a new event, from the server for an opened one. */
  async function eventContext(parameters) {
    const event = parameters.get("viewEventId");
    if (event && UID.test(event)) {
      const stored = await serverJson(`tracker/events/${event}?fields=event,program,orgUnit`);
      return { event, program: stored?.program ?? null, orgUnit: stored?.orgUnit ?? null };
    }
    return { program: parameters.get("programId"), orgUnit: parameters.get("orgUnitId") };
  }

  const reportDate = document.querySelector('div[data-test="dataentry-field-occurredAt"]');
  const context = await eventContext(routeParameters());
  if (!reportDate || !context.program || !context.orgUnit) {
    return {
      ok: false,
      message:
        "No event form on this page. Open the In-Patient form in DHIS2 Capture (a new event for your " +
        "organisation unit, or an event from the list), fill it in, then open the uploader again.",
    };
  }
  if (!UID.test(context.program) || !UID.test(context.orgUnit)) {
    return { ok: false, message: "The Capture address does not name a valid program and organisation unit." };
  }
  const { values, unreadable } = capturedValues();
  const form = {
    program: context.program,
    orgUnit: context.orgUnit,
    occurredAt: fieldValue(reportDate, "occurredAt") ?? "",
    values,
  };
  if (context.event) form.event = context.event;
  return { ok: true, form, unreadable, dateFormat: await dateFormat(), orgUnitName: orgUnitName() };
})();
