// Settings: the DHIMS2 server, how the host signs in, and the default program, stage and org
// unit, chosen from what the server itself says. "Save and test connection" = configure, then
// check_connection.
import { api } from "./lib/browser.js";
import { connectionLine } from "./lib/connection-line.js";
import { element } from "./lib/dom.js";
import { hostRequest, listen } from "./lib/worker.js";

const DEFAULT_SERVER = "https://events.chimgh.org/events/";

const settings = document.getElementById("settings");
const server = document.getElementById("server");
const serverError = document.getElementById("server-error");
const tokenField = document.getElementById("token-field");
const token = document.getElementById("token");
const tokenState = document.getElementById("token-state");
const program = document.getElementById("program");
const stage = document.getElementById("stage");
const orgUnit = document.getElementById("org-unit");
const result = document.getElementById("result");
const fields = { server, token, program, stage, org_unit: orgUnit };

function chosenAuth() {
  return settings.elements.auth.value;
}

function showTokenField() {
  tokenField.hidden = chosenAuth() !== "token";
}

/** Fills a select with [value, label] pairs and keeps `selected` chosen (listed even if unknown). */
function fillSelect(select, choices, selected) {
  const listed = choices.some(([value]) => value === selected);
  const all = listed || !selected ? choices : [[selected, selected], ...choices];
  select.replaceChildren(
    ...all.map(([value, label]) => element("option", { value, selected: value === selected }, label)),
  );
}

function showConfig(config) {
  server.value = config.server;
  settings.elements.auth.value = config.auth;
  tokenState.textContent = config.token_set
    ? "A token is saved. Leave this empty to keep it, or type a new one."
    : "No token is saved yet.";
  fillSelect(program, [], config.program);
  fillSelect(stage, [], config.stage);
  fillSelect(orgUnit, [], config.org_unit);
  showTokenField();
}

function showResult(tone, lines) {
  result.dataset.state = tone;
  result.replaceChildren(...lines.map((line) => element("p", {}, line)));
  result.hidden = false;
}

function markField(name) {
  for (const [field, input] of Object.entries(fields)) {
    input.setAttribute("aria-invalid", String(field === name));
  }
}

async function loadChoices(orgUnits) {
  const reply = await hostRequest("get_program", { program: program.value });
  if (reply.ok) {
    const { program: form } = reply;
    fillSelect(program, [[form.program, form.programName]], form.program);
    fillSelect(stage, [[form.programStage, form.stageName]], form.programStage);
  }
  // The facilities of the program under the user's units (a district or region user has many),
  // by name; only the user's own unit ids when the host could not say.
  const facilities = reply.ok && reply.org_units?.length ? reply.org_units : null;
  if (facilities)
    fillSelect(
      orgUnit,
      facilities.map((unit) => [unit.id, unit.name]),
      orgUnit.value,
    );
  else if (orgUnits)
    fillSelect(
      orgUnit,
      orgUnits.map((uid) => [uid, uid]),
      orgUnit.value,
    );
}

/** The match pattern for the server's host: what chrome.cookies needs to read the session. */
function originPattern(address) {
  return `${address.protocol}//${address.hostname}/*`;
}

function parsedServer() {
  try {
    const address = new URL(server.value.trim());
    if (address.protocol === "https:" || address.protocol === "http:") return address;
  } catch {
    // falls through to the message below
  }
  serverError.textContent = "Type the full address, starting with https://, e.g. " + DEFAULT_SERVER;
  markField("server");
  return null;
}

async function saveAndTest(event) {
  event.preventDefault();
  serverError.textContent = "";
  markField(null);
  const address = parsedServer();
  if (!address) return;
  // Only the browser's session needs reading DHIMS2's cookies; a token goes from the host alone.
  // The permission prompt needs the click's user gesture: ask before anything else awaits.
  const granted =
    chosenAuth() !== "session" || (await api.permissions.request({ origins: [originPattern(address)] }));
  if (!granted) {
    showResult("error", [
      `Without access to ${address.host} the extension cannot pass your DHIMS2 session to the uploader.`,
      "Press the button again and allow it, or sign in with a personal access token.",
    ]);
    return;
  }
  const changes = {
    server: address.href,
    auth: chosenAuth(),
    program: program.value,
    stage: stage.value,
    org_unit: orgUnit.value,
  };
  if (chosenAuth() === "token" && token.value.trim()) changes.token = token.value.trim();
  showResult("busy", ["Saving…"]);
  const saved = await hostRequest("configure", changes);
  if (!saved.ok) {
    markField(saved.error.details?.field);
    showResult("error", ["Not saved.", saved.error.message]);
    return;
  }
  token.value = "";
  showConfig(saved.config);
  showResult("busy", ["Saved. Testing the connection…"]);
  const checked = await hostRequest("check_connection");
  if (!checked.ok) {
    showResult("error", ["Saved, but the connection test failed.", checked.error.message]);
    return;
  }
  showResult("created", [
    `Connected to DHIS2 ${checked.version} as ${checked.user.username}.`,
    `You may capture in ${checked.org_units.length} organisation unit(s).`,
  ]);
  await loadChoices(checked.org_units);
}

function enableForm(enabled) {
  for (const control of settings.elements) control.disabled = !enabled;
}

async function start() {
  listen({ name: "options", onStatus: connectionLine(), onPush: () => {} });
  settings.addEventListener("submit", saveAndTest);
  for (const radio of settings.elements.auth) radio.addEventListener("change", showTokenField);
  server.value = DEFAULT_SERVER;
  // Typing before the saved settings arrive would be overwritten by them.
  enableForm(false);
  const reply = await hostRequest("get_config");
  enableForm(true);
  if (!reply.ok) {
    showResult("error", ["The saved settings could not be read.", reply.error.message]);
    return;
  }
  showConfig(reply.config);
  const { status } = await api.storage.session.get("status");
  await loadChoices(status?.connection?.org_units);
}

start();
