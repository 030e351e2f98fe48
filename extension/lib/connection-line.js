// The connection line at the top of the popup and the options page: what is wrong, and the fix.
import { api } from "./browser.js";
import { element } from "./dom.js";
import { UNSETTLED, describe } from "./status.js";
import { ask } from "./worker.js";

function fixNodes(described) {
  const nodes = [];
  const { fix: remedy } = described;
  if (remedy?.kind === "command") {
    const copy = element("button", { type: "button", className: "copy" }, "Copy");
    copy.addEventListener("click", async () => {
      await navigator.clipboard.writeText(remedy.command);
      copy.textContent = "Copied";
    });
    nodes.push(
      element("p", {}, remedy.text),
      element("div", { className: "command" }, element("code", {}, remedy.command), copy),
    );
  } else if (remedy?.kind === "link") {
    nodes.push(
      element("a", { href: remedy.href, target: "_blank", rel: "noopener", className: "button primary" }, remedy.text),
    );
  } else if (remedy?.kind === "options") {
    nodes.push(element("button", { type: "button", onclick: () => api.runtime.openOptionsPage() }, remedy.text));
  }
  if (described.retry) {
    nodes.push(
      element("button", { type: "button", className: "try-again", onclick: () => ask("reconnect") }, "Try again"),
    );
  }
  return nodes;
}

/** Returns render(status); onSettled() runs once, when the line first says something definite. */
export function connectionLine({ onSettled = () => {} } = {}) {
  const section = document.getElementById("connection");
  const title = document.getElementById("connection-title");
  const detail = document.getElementById("connection-detail");
  const fix = document.getElementById("connection-fix");
  let settled = false;
  return (status) => {
    const described = describe(status);
    const changed = section.dataset.state !== described.state || title.textContent !== described.title;
    section.dataset.state = described.state;
    section.dataset.tone = described.tone;
    title.textContent = described.title;
    detail.textContent = described.detail;
    // Rebuilding the fix on every update would take the focus away from its buttons.
    if (fix && changed) fix.replaceChildren(...fixNodes(described));
    if (!settled && !UNSETTLED.has(described.state)) {
      settled = true;
      onSettled();
    }
  };
}
