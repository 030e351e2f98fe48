// Reads the event form on a DHIS2 Capture page when the uploader asks (it is injected with
// chrome.scripting and its value is the result). It only reads: it never fills or submits the form.
(() => {
  const UID = /^[A-Za-z][A-Za-z0-9]{10}$/;
  const FIELD_PREFIX = "form-field-";

  function routeParameters() {
    const query = window.location.hash.split("?")[1] ?? "";
    return new URLSearchParams(query);
  }

  function text(node) {
    return node ? node.textContent.trim() : "";
  }

  // Option sets are React-Select dropdowns: the input is only a search box, the chosen option's
  // name is shown in the single-value element. The host turns the name into the option code.
  function chosenOptionName(wrapper) {
    return text(wrapper.querySelector('[class*="singleValue"], [class*="single-value"]'));
  }

  function fieldValue(wrapper, uid) {
    const yes = wrapper.querySelector(`input[id="${uid}Yes"]`);
    const no = wrapper.querySelector(`input[id="${uid}No"]`);
    if (yes || no) {
      if (yes?.checked) return "true";
      return no?.checked ? "false" : "";
    }
    const checkbox = wrapper.querySelector('input[type="checkbox"]');
    if (checkbox) return checkbox.checked ? "true" : "";
    if (wrapper.querySelector('input[role="combobox"], input[aria-autocomplete="list"]')) {
      return chosenOptionName(wrapper);
    }
    const input = wrapper.querySelector("input, textarea");
    return input ? input.value.trim() : "";
  }

  function capturedValues() {
    const values = {};
    for (const wrapper of document.querySelectorAll(`div[data-test^="${FIELD_PREFIX}"]`)) {
      const uid = wrapper.dataset.test.slice(FIELD_PREFIX.length);
      if (!UID.test(uid)) continue;
      const value = fieldValue(wrapper, uid);
      if (value !== "") values[uid] = value;
    }
    return values;
  }

  const parameters = routeParameters();
  const program = parameters.get("programId");
  const orgUnit = parameters.get("orgUnitId");
  const reportDate = document.querySelector('div[data-test="dataentry-field-occurredAt"] input');
  if (!reportDate || !program || !orgUnit) {
    return {
      ok: false,
      message:
        "No event form on this page. Open the In-Patient form in DHIS2 Capture (a new event for your " +
        "organisation unit), fill it in, then open the uploader again.",
    };
  }
  if (!UID.test(program) || !UID.test(orgUnit)) {
    return { ok: false, message: "The Capture address does not name a valid program and organisation unit." };
  }
  const form = { program, orgUnit, occurredAt: reportDate.value.trim(), values: capturedValues() };
  const event = parameters.get("viewEventId");
  if (event && UID.test(event)) form.event = event;
  const orgUnitField = text(document.querySelector('div[data-test="dataentry-field-orgUnit"]'));
  const orgUnitName = orgUnitField.replace(/^organi[sz]ation unit\s*/i, "");
  return { ok: true, form, orgUnitName };
})();
