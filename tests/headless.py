"""A headless Chromium driven over the DevTools protocol on a pipe (no extra package): open a page, wait for a
condition, run a script, take a screenshot. Shared by the test modules; import as a plain module."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class HeadlessPage:
    """One page in a fresh headless Chromium (``--remote-debugging-pipe``: commands on fd 3, replies on fd 4)."""

    def __init__(self, profile: Path, width: int = 900, height: int = 700):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # the child's fds 3 and 4, set up without clobbering either pipe end
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]

        def wire() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4, *high), preexec_fn=wire, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for fd in (to_child, from_child, *high):
            os.close(fd)
        self._id, self._buffer = 0, b""
        target = next(t for t in self._call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self._call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]

    def _call(self, method: str, session: bool = False, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        self._call("Page.navigate", session=True, url="about:blank")
        self._call("Page.navigate", session=True, url=url)

    def run_before_each_page(self, source: str) -> None:
        """Run ``source`` in every page opened from now on, before the page's own scripts (exempt from its CSP)."""
        self._call("Page.enable", session=True)
        self._call("Page.addScriptToEvaluateOnNewDocument", session=True, source=source)

    def evaluate(self, expression: str):
        result = self._call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        """Evaluate ``expression`` until it is truthy; return its value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"still false after {timeout} s: {expression}")

    def screenshot(self) -> np.ndarray:
        """The viewport as a BGR array."""
        data = base64.b64decode(self._call("Page.captureScreenshot", session=True, format="png")["data"])
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._read)
        os.close(self._write)

    def __enter__(self) -> HeadlessPage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
