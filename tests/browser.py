"""Headless Chromium for page tests: the DOM after scripts ran, and a screenshot.

``make test`` installs Chromium first (``make browser``); a missing browser fails the test
rather than skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1200,2400"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.fail("headless Chromium is needed for page tests: run 'make browser' (Debian package chromium)")


def render(page: Path, workdir: Path) -> tuple[str, bytes]:
    """(DOM text, PNG bytes) of ``page`` opened from disk, with the network switched off."""
    profile = workdir / "chromium-profile"
    shot = workdir / "shot.png"
    base = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    dom = subprocess.run([*base, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    subprocess.run([*base, f"--screenshot={shot}", page.resolve().as_uri()], capture_output=True, timeout=120,
                   check=True)
    return dom, shot.read_bytes()
