"""The report page in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe`` (commands on fd 3, answers on fd 4,
NUL-separated JSON), so only the standard library is needed. The page must load with no
console error, no uncaught exception, no failed request and no request that leaves the
file itself (everything is inline); every image must load (``naturalWidth > 0``) and every
figure decode; at a 1280 px wide viewport, with every ``<details>`` open, nothing may
overflow sideways (an implementation name too long to wrap is in the page to try it); a
screenshot is saved. The same measurements are then taken on the page with a wide element
and a broken image added, and must catch both.

Without a Chromium binary the test is skipped with the reason (``pytest -ra`` lists it).
Set ``GRADVERIFY_SCREENSHOT_DIR`` to keep the screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop
from gradverify.report import write_report

EVIL = "<script>alert(1)</script>"
UNBREAKABLE = "_with_a_name_that_has_nowhere_to_wrap" * 4  # about 150 characters
VIEWPORT_WIDTH = 1280
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-pipe",
    "--window-size=1280,1600",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    for name in (os.environ.get("GRADVERIFY_CHROMIUM"), "/usr/bin/chromium", *CANDIDATES):
        if name and (path := shutil.which(name)):
            return path
    return None


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # a tiny Python shim moves the pipe ends to the fds Chromium expects (3 and 4)
        shim = (
            f"import os, sys; os.dup2({to_browser_r}, 3); os.dup2({from_browser_w}, 4); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        command = [
            sys.executable,
            "-c",
            shim,
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            command,
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed the debugging pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self._receive(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                message = self._receive(deadline)
                if "method" in message:
                    self.events.append(message)
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "SKIPPED LOUDLY: headless Chromium is not installed, so the report page "
            "was NOT checked in a browser (install Debian's 'chromium' package, as "
            ".ci/run does, or set GRADVERIFY_CHROMIUM to a Chrome binary)"
        )
    return binary


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    write_report(
        out,
        implementations={"naive": naive_bce_backprop, EVIL + UNBREAKABLE: fused_bce_backprop},
        dtypes=("float16",),
        max_examples=6,
        seed=3,
        progress=False,
        title=f"browser check {EVIL}",
        search_options={"database": None},
        scan_options={
            "sweep_points": 40,
            "check_points": 16,
            "neighbourhood": 2,
            "hidden_activations": ("sigmoid",),
        },
    )
    return out / "index.html"


IMAGES = (
    "Array.from(document.querySelectorAll('img')).map(i => "
    "[i.complete, i.naturalWidth, i.naturalHeight, i.dataset.file || i.src.slice(0, 40)])"
)
OPEN_DETAILS = "document.querySelectorAll('details').forEach(d => { d.open = true; }); true"
WIDTHS = "[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
SPOIL = (
    "new Promise(done => { const wide = document.createElement('div');"
    " wide.style.width = '3000px'; wide.textContent = 'wide';"
    " document.body.appendChild(wide);"
    " const broken = new Image(); broken.onerror = broken.onload = () => done(true);"
    " broken.src = 'data:image/png;base64,AAAA'; document.body.appendChild(broken); })"
)


def overflow(widths: list[int]) -> int:
    """How many CSS px the page is wider than the viewport (0: it fits)."""
    page, body, viewport = widths
    return max(page, body) - viewport


def unloaded(images: list[list[Any]]) -> list[Any]:
    """The images that did not load: not complete, or no decoded width."""
    return [name for complete, width, _, name in images if not (complete and width > 0)]


class Page:
    """One tab of a DevTools browser, at a fixed viewport width."""

    def __init__(self, browser: DevTools) -> None:
        self.browser = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=self.session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": VIEWPORT_WIDTH, "height": 1600, "deviceScaleFactor": 1, "mobile": False},
        )

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.browser.call(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        answer = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        return answer["result"]["value"]


def test_report_page_loads_cleanly_in_headless_chromium(chromium, report_page, tmp_path):
    browser = DevTools(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        page = Page(browser)
        url = report_page.resolve().as_uri()
        navigation = page.call("Page.navigate", {"url": url})
        assert "errorText" not in navigation, navigation
        browser.wait_for("Page.loadEventFired")
        browser.drain(1.0)  # late console messages or requests

        images = page.evaluate(IMAGES)
        title = page.evaluate("document.title")
        scripts = page.evaluate("document.querySelectorAll('script').length")
        assert page.evaluate(OPEN_DETAILS)
        widths = page.evaluate(WIDTHS)
        events = list(browser.events)  # before the controls below add their own

        metrics = page.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shots = {
            "report_top.png": page.call("Page.captureScreenshot", {"format": "png"}),
            "report_full.png": page.call(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": min(size["height"], 16000),
                        "scale": 1,
                    },
                },
            ),
        }
        # controls: the same measurements catch a wide element and a broken image
        assert page.evaluate(SPOIL)
        spoilt_widths, spoilt_images = page.evaluate(WIDTHS), page.evaluate(IMAGES)
    finally:
        browser.close()

    keep = os.environ.get("GRADVERIFY_SCREENSHOT_DIR")
    for name, shot in shots.items():
        data = base64.b64decode(shot["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        (tmp_path / name).write_bytes(data)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / name).write_bytes(data)

    console_errors = [
        e["params"]
        for e in events
        if e["method"] == "Runtime.consoleAPICalled"
        and e["params"].get("type") in ("error", "assert")
    ]
    exceptions = [e["params"] for e in events if e["method"] == "Runtime.exceptionThrown"]
    log_errors = [
        e["params"]["entry"]
        for e in events
        if e["method"] == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"
    ]
    failed = [e["params"] for e in events if e["method"] == "Network.loadingFailed"]
    requests = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    dialogs = [e for e in events if e["method"] == "Page.javascriptDialogOpening"]
    assert not console_errors, console_errors
    assert not exceptions, exceptions
    assert not log_errors, log_errors
    assert not failed, failed
    assert not dialogs, "a script ran: an alert() dialog opened"
    outside = [u for u in requests if u != url and not u.startswith("data:")]
    assert not outside, f"the page requested other resources: {outside}"
    assert url in requests

    assert scripts == 0
    assert title == f"browser check {EVIL}"  # shown as text, not run
    assert len(images) == report_page.read_text(encoding="utf-8").count("<img ") >= 4
    assert not unloaded(images), f"images that did not load: {unloaded(images)}"
    for complete, width, height, name in images:
        assert complete and width >= 400 and height >= 250, (name, width, height)
        assert (report_page.parent / name).is_file()
    assert widths[2] == VIEWPORT_WIDTH
    assert overflow(widths) <= 0, f"the page is {overflow(widths)} px wider than the viewport"

    assert overflow(spoilt_widths) > 0, spoilt_widths
    assert unloaded(spoilt_images) == [spoilt_images[-1][3]], spoilt_images
