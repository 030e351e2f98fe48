"""Debian's Firefox ESR, headless, driven over WebDriver BiDi: Firefox speaks the protocol itself
(`--remote-debugging-port`, websocket `/session`), so no geckodriver is needed. The extension is
installed as a temporary add-on with `webExtension.install`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import websocket

FIREFOX = Path("/usr/bin/firefox-esr")
START_TIMEOUT = 60.0
WAIT_TIMEOUT = 60.0
# WebDriver key codes (the WebDriver spec's table of special keys).
KEYS = {"Tab": "\ue004", "Control": "\ue009"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BiDiError(RuntimeError):
    pass


class Firefox:
    """One headless Firefox on its own profile, with one BiDi session."""

    def __init__(self, profile: Path, env: dict[str, str], prefs: dict[str, Any], log: Path):
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()),
            encoding="utf-8",
        )
        port = free_port()
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                str(FIREFOX),
                "--headless",
                "--no-remote",
                "--profile",
                str(profile),
                f"--remote-debugging-port={port}",
                # BiDi refuses to navigate a tab to a moz-extension: page; with system access
                # the browser window's own script opens one (see open_extension_page).
                "--remote-allow-system-access",
                "about:blank",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._socket = self._connect(port)
        self._next_id = 0
        self.command("session.new", {"capabilities": {}})

    def _connect(self, port: int) -> websocket.WebSocket:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                # Firefox refuses websocket clients that send an Origin it does not allow.
                return websocket.create_connection(
                    f"ws://127.0.0.1:{port}/session", suppress_origin=True, timeout=WAIT_TIMEOUT
                )
            except (OSError, websocket.WebSocketException):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") != self._next_id:
                continue  # an event: none is subscribed to, but they may come
            if message.get("type") == "error":
                raise BiDiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def install_extension(self, folder: Path) -> str:
        return self.command(
            "webExtension.install", {"extensionData": {"type": "path", "path": str(folder)}}
        )["extension"]

    def new_tab(self) -> BiDiClerk:
        context = self.command("browsingContext.create", {"type": "tab"})["context"]
        return BiDiClerk(self, context)

    def open_extension_page(self, url: str) -> BiDiClerk:
        """A new tab showing an extension page, opened as the browser itself opens one."""
        [window] = [
            context
            for context in self.command("browsingContext.getTree", {"moz:scope": "chrome"})[
                "contexts"
            ]
            if context["url"] == "chrome://browser/content/browser.xhtml"
        ]
        opened = self.command(
            "script.callFunction",
            {
                "functionDeclaration": """(url) => {
                  const tab = gBrowser.addTab(url, {
                    triggeringPrincipal: Services.scriptSecurityManager.getSystemPrincipal(),
                  });
                  gBrowser.selectedTab = tab;
                }""",
                "arguments": [{"type": "string", "value": url}],
                "target": {"context": window["context"]},
                "awaitPromise": False,
            },
        )
        if opened["type"] != "success":
            raise BiDiError(f"cannot open {url}: {opened.get('exceptionDetails')}")
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            for context in self.command("browsingContext.getTree", {})["contexts"]:
                if context["url"] == url:
                    return BiDiClerk(self, context["context"])
            time.sleep(0.1)
        raise AssertionError(f"no tab shows {url}")

    def close(self) -> None:
        # The connection may end before Firefox answers.
        with contextlib.suppress(BiDiError, OSError, websocket.WebSocketException):
            self.command("browser.close", {})
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._socket.close()
        self._log.close()


class BiDiClerk:
    """A clerk in one Firefox tab (see capture_app.Clerk)."""

    def __init__(self, firefox: Firefox, context: str) -> None:
        self.firefox = firefox
        self.context = context

    def goto(self, url: str) -> None:
        self.firefox.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    def evaluate(self, function: str, *arguments: Any) -> Any:
        """Calls a JavaScript function in the page with JSON arguments; returns its JSON value."""
        result = self.firefox.command(
            "script.callFunction",
            {
                "functionDeclaration": (
                    f"async (...args) => JSON.stringify(await ({function})"
                    "(...args.map((arg) => JSON.parse(arg))))"
                ),
                "arguments": [{"type": "string", "value": json.dumps(a)} for a in arguments],
                "target": {"context": self.context},
                "awaitPromise": True,
            },
        )
        if result["type"] != "success":
            raise BiDiError(f"{function}: {result.get('exceptionDetails', {}).get('text')}")
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    def wait_until(self, function: str, *arguments: Any) -> Any:
        """The first truthy value of function(...arguments), polled."""
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            value = self.evaluate(function, *arguments)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {WAIT_TIMEOUT} s: {function} {arguments}")
            time.sleep(0.1)

    def click(self, selector: str, text: str | None = None) -> None:
        """Moves the mouse to the element's centre and clicks there, as a person does."""
        box = self.wait_until(
            """(selector, text) => {
              const found = [...document.querySelectorAll(selector)].find(
                (node) => text === null || node.textContent.trim() === text);
              if (!found) return null;
              found.scrollIntoView({ block: "center" });
              const box = found.getBoundingClientRect();
              return { x: Math.round(box.x + box.width / 2),
                       y: Math.round(box.y + box.height / 2) };
            }""",
            selector,
            text,
        )
        self.click_at(box["x"], box["y"])

    def click_at(self, x: int, y: int) -> None:
        self._actions(
            {
                "type": "pointer",
                "id": "mouse",
                "actions": [
                    {"type": "pointerMove", "x": x, "y": y},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }
        )

    def keys(self, text: str) -> None:
        actions = []
        for character in text:
            actions += [
                {"type": "keyDown", "value": character},
                {"type": "keyUp", "value": character},
            ]
        self._actions({"type": "key", "id": "keyboard", "actions": actions})

    def press(self, key: str) -> None:
        if key == "SelectAll":
            control = KEYS["Control"]
            actions = [
                {"type": "keyDown", "value": control},
                {"type": "keyDown", "value": "a"},
                {"type": "keyUp", "value": "a"},
                {"type": "keyUp", "value": control},
            ]
        else:
            actions = [
                {"type": "keyDown", "value": KEYS[key]},
                {"type": "keyUp", "value": KEYS[key]},
            ]
        self._actions({"type": "key", "id": "keyboard", "actions": actions})

    def _actions(self, source: dict[str, Any]) -> None:
        self.firefox.command("input.performActions", {"context": self.context, "actions": [source]})

    def count(self, selector: str) -> int:
        return self.evaluate("(selector) => document.querySelectorAll(selector).length", selector)

    def wait_for(self, selector: str, *, text: str | None = None, value: str | None = None) -> None:
        self.wait_until(
            """(selector, text, value) => {
              return [...document.querySelectorAll(selector)].some((node) =>
                (text === null || node.textContent.trim() === text) &&
                (value === null || node.value === value));
            }""",
            selector,
            text,
            value,
        )

    def text(self, selector: str) -> str:
        return self.evaluate(
            "(selector) => document.querySelector(selector)?.textContent.trim() ?? ''", selector
        )

    def screenshot(self, path: Path) -> None:
        data = self.firefox.command("browsingContext.captureScreenshot", {"context": self.context})
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
