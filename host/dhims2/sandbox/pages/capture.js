"use strict";
// A small imitation of DHIS2 Capture's "new event" form: the same DOM markers, built from the
// sandbox's own program metadata, saved the way Capture saves (POST /api/tracker?async=false).
(function () {
  const API_ROOT = new URL("../api/", window.location.href);
  const PROGRAM_FIELDS =
    "id,name,programType,programStages[id,name,programStageDataElements[compulsory," +
    "dataElement[id,code,name,formName,valueType,optionSet[id,options[code,name]]]]]";
  const UID_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const UID_CHARACTERS = UID_LETTERS + "0123456789";

  const form = document.getElementById("new-event");
  const pageStatus = document.getElementById("page-status");
  const saveResult = document.getElementById("save-result");
  let context = null; // {program, stage, orgUnitId} of the form on screen
  const chosenOptions = new Map(); // data element uid -> chosen option code

  function element(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  async function getJson(path) {
    const response = await fetch(new URL(path, API_ROOT), {
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" },
    });
    if (!response.ok) throw new Error(`Could not load ${path.split("?")[0]} (HTTP ${response.status})`);
    return response.json();
  }

  function newUid() {
    const random = crypto.getRandomValues(new Uint32Array(11));
    let uid = UID_LETTERS[random[0] % UID_LETTERS.length];
    for (let i = 1; i < 11; i += 1) uid += UID_CHARACTERS[random[i] % UID_CHARACTERS.length];
    return uid;
  }

  function routeParameters() {
    const [route, query = ""] = window.location.hash.replace(/^#/, "").split("?");
    const parameters = new URLSearchParams(query);
    return { route, orgUnitId: parameters.get("orgUnitId"), programId: parameters.get("programId") };
  }

  function textInput(placeholder) {
    const input = element("input");
    input.type = "text";
    input.autocomplete = "off";
    if (placeholder) input.placeholder = placeholder;
    return input;
  }

  function booleanRadios(uid) {
    const radios = element("div", "radios");
    for (const [suffix, value] of [["Yes", "true"], ["No", "false"]]) {
      const label = element("label");
      const radio = element("input");
      radio.type = "radio";
      radio.id = uid + suffix;
      radio.name = uid;
      radio.value = value;
      label.append(radio, ` ${suffix}`);
      radios.append(label);
    }
    return radios;
  }

  // React-Select-like dropdown: the input is only a search box (empty once an option is chosen);
  // the chosen option's name shows in the value label (react-select v1 markup, as Capture v101 has it).
  function optionSelect(dataElement) {
    const options = dataElement.optionSet.options;
    const container = element("div", "select");
    const control = element("div", "select-control");
    const singleValue = element("div", "Select-value-label");
    const input = textInput();
    input.id = dataElement.id;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    const menu = element("div", "menu");
    menu.setAttribute("role", "listbox");
    menu.hidden = true;
    let visible = [];
    let focused = -1;

    function openMenu() {
      const term = input.value.trim().toLowerCase();
      visible = options.filter((option) => option.name.toLowerCase().includes(term));
      focused = Math.min(Math.max(focused, 0), visible.length - 1);
      menu.replaceChildren(
        ...visible.map((option, index) => {
          const item = element("div", index === focused ? "option focused" : "option");
          item.setAttribute("role", "option");
          item.textContent = option.name;
          item.addEventListener("mousedown", (event) => event.preventDefault());
          item.addEventListener("click", () => choose(option));
          return item;
        }),
      );
      if (visible.length === 0) {
        const empty = element("div", "no-options");
        empty.textContent = "No options";
        menu.append(empty);
      }
      menu.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function closeMenu() {
      menu.hidden = true;
      focused = -1;
      input.setAttribute("aria-expanded", "false");
    }

    function choose(option) {
      chosenOptions.set(dataElement.id, option.code);
      singleValue.textContent = option.name;
      input.value = "";
      singleValue.hidden = false;
      closeMenu();
    }

    control.addEventListener("mousedown", (event) => {
      if (event.target !== input) event.preventDefault();
      input.focus();
      openMenu();
    });
    input.addEventListener("input", () => {
      singleValue.hidden = input.value !== "";
      focused = 0;
      openMenu();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        focused = menu.hidden ? 0 : focused + step;
        openMenu();
      } else if ((event.key === "Enter" || event.key === "Tab") && !menu.hidden && visible[focused]) {
        if (event.key === "Enter") event.preventDefault();
        choose(visible[focused]);
      } else if (event.key === "Escape") {
        closeMenu();
      }
    });
    input.addEventListener("blur", () => {
      input.value = "";
      singleValue.hidden = false;
      closeMenu();
    });
    control.append(singleValue, input);
    container.append(control, menu);
    return container;
  }

  function dataElementField(stageElement) {
    const dataElement = stageElement.dataElement;
    const wrapper = element("div", "field");
    wrapper.dataset.test = `form-field-${dataElement.id}`;
    const label = element("label");
    label.textContent = dataElement.formName || dataElement.name;
    if (stageElement.compulsory) {
      const star = element("span", "required");
      star.textContent = " *";
      label.append(star);
    }
    let control;
    if (dataElement.optionSet) {
      control = optionSelect(dataElement);
      label.htmlFor = dataElement.id;
    } else if (dataElement.valueType === "BOOLEAN" || dataElement.valueType === "TRUE_ONLY") {
      control = booleanRadios(dataElement.id);
    } else {
      control = textInput(dataElement.valueType === "DATE" ? "YYYY-MM-DD" : "");
      label.append(control);
      wrapper.append(label);
      return wrapper;
    }
    wrapper.append(label, control);
    return wrapper;
  }

  function valueOf(dataElement) {
    const wrapper = form.querySelector(`div[data-test="form-field-${dataElement.id}"]`);
    if (dataElement.optionSet) return chosenOptions.get(dataElement.id) ?? null;
    const radio = wrapper.querySelector('input[type="radio"]:checked');
    if (radio) return radio.value;
    const input = wrapper.querySelector('input[type="text"]');
    return input && input.value.trim() !== "" ? input.value.trim() : null;
  }

  function showResult(className, message, details) {
    saveResult.className = className;
    saveResult.replaceChildren(message);
    if (details.length) {
      const list = element("ul", "errors");
      for (const detail of details) {
        const item = element("li");
        item.textContent = detail;
        list.append(item);
      }
      saveResult.append(list);
    }
  }

  async function save() {
    const { program, stage, orgUnitId } = context;
    const dataValues = [];
    for (const stageElement of stage.programStageDataElements) {
      const value = valueOf(stageElement.dataElement);
      if (value !== null) dataValues.push({ dataElement: stageElement.dataElement.id, value });
    }
    const occurredAt = form.querySelector('div[data-test="dataentry-field-occurredAt"] input').value.trim();
    const event = {
      event: newUid(),
      program: program.id,
      programStage: stage.id,
      orgUnit: orgUnitId,
      occurredAt: occurredAt || null,
      status: document.getElementById("completeYes").checked ? "COMPLETED" : "ACTIVE",
      dataValues,
    };
    const response = await fetch(new URL("tracker?async=false", API_ROOT), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest" },
      body: JSON.stringify({ events: [event] }),
    });
    const report = await response.json().catch(() => ({}));
    if (response.ok) {
      showResult("success", `Event ${event.event} saved.`, []);
      return;
    }
    const errors = (report.validationReport?.errorReports ?? []).map((error) => error.message);
    showResult("error", `Not saved (HTTP ${response.status}).`, errors.length ? errors : [report.message ?? ""]);
  }

  async function render() {
    form.hidden = true;
    chosenOptions.clear();
    saveResult.replaceChildren();
    const { route, orgUnitId, programId } = routeParameters();
    if (route !== "/new" || !orgUnitId || !programId) {
      pageStatus.textContent = "Open #/new?orgUnitId=<org unit>&programId=<program> to add an event.";
      return;
    }
    pageStatus.textContent = "Loading…";
    const [program, orgUnit] = await Promise.all([
      getJson(`programs/${encodeURIComponent(programId)}?fields=${PROGRAM_FIELDS}`),
      getJson(`organisationUnits/${encodeURIComponent(orgUnitId)}?fields=id,name`),
    ]);
    const stage = program.programStages[0];
    context = { program, stage, orgUnitId };
    document.getElementById("program-name").textContent = program.name;
    form.querySelector('div[data-test="dataentry-field-orgUnit"] .org-unit-name').textContent = orgUnit.name;
    document.getElementById("data-elements").replaceChildren(...stage.programStageDataElements.map(dataElementField));
    pageStatus.textContent = "";
    form.hidden = false;
  }

  document.getElementById("save").addEventListener("click", () => {
    save().catch((error) => showResult("error", error.message, []));
  });
  window.addEventListener("hashchange", () => render().catch((error) => (pageStatus.textContent = error.message)));
  render().catch((error) => (pageStatus.textContent = error.message));
})();
