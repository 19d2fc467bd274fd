"""Headless Chromium driven over the Chrome DevTools Protocol, for tests of web pages (pose_viewer).

A small synchronous CDP client on `websockets` (a dependency of viser): start Debian's `chromium` with
--remote-debugging-port=0, read the port it chose from DevToolsActivePort, attach to its page, then
navigate, evaluate JavaScript and take screenshots. Network access other than localhost is refused, so
a page that needs a CDN fails visibly.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class HeadlessChromium:
    """Context manager: one headless Chromium with one page of `width` x `height` CSS pixels."""

    def __init__(
        self, width: int = 800, height: int = 500, executable: str | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        """`prefix`: a command that runs Chromium (e.g. ("chrt", "--idle", "0") for idle CPU priority)."""
        self.prefix = prefix
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise FileNotFoundError("no chromium executable (scripts/setup.sh --with-browser installs Debian's)")
        self.width, self.height = width, height
        self._ids = itertools.count(1)
        self.failed_requests: list[str] = []
        self.console_errors: list[str] = []

    def __enter__(self) -> HeadlessChromium:
        self._profile = tempfile.TemporaryDirectory(prefix="pose_viewer_chromium_")
        args = [
            *self.prefix, self.executable, "--headless", "--no-sandbox", "--disable-gpu-compositing",
            # WebGL without a GPU: SwiftShader (software), which Chromium no longer falls back to by itself.
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
            # Offline: every host but localhost fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
            f"--window-size={self.width},{self.height}", f"--user-data-dir={self._profile.name}",
            "--remote-debugging-port=0", "about:blank",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        self._socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Network.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stderr.close()
            self._profile.cleanup()

    def _record_event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.loadingFailed":
            self.failed_requests.append(params.get("errorText", "") + " " + params.get("requestId", ""))
        elif method == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        """Send one CDP command and return its result (events meanwhile are recorded)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._record_event(message)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, poll_s: float = 0.25):
        """Evaluate `expression` until it is truthy; return its value (TimeoutError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value, error = self.evaluate(expression), None
            except RuntimeError as raised:  # e.g. no document.body yet while the page loads
                value, error = None, raised
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression!r} within {timeout} s (last error: {error})")
            time.sleep(poll_s)

    def screenshot_png(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def screenshot(self) -> np.ndarray:
        """(height, width, 3) uint8 RGB of the page as shown."""
        import cv2

        png = np.frombuffer(self.screenshot_png(), np.uint8)
        return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
