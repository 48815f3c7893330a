"""Headless Chromium for the browser tests: Debian's ``chromium`` package, installed with
apt-get when it is missing (Playwright's own browser downloads are never used)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> None:
    """apt-get install chromium, once, whichever xdist worker gets here first."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        pytest.skip("chromium is not installed and there is no apt-get to install it")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # apt serialises concurrent runs with its own lock; wait for it rather than fail.
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
    update = [*prefix, apt_get, *lock_wait, "update", "-qq"]
    install = [*prefix, apt_get, *lock_wait, "install", "-y", "-qq", "chromium"]
    # A failed update (a stale mirror) may still leave an installable package list.
    subprocess.run(update, check=False, env=env, capture_output=True, timeout=900)
    result = subprocess.run(
        install, check=False, env=env, capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"{' '.join(install)} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by Playwright, installed first if it is missing."""
    if not CHROMIUM.exists():
        _install_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
