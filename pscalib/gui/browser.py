"""Headless Chromium for the GUI tests and screenshots (selenium + Debian chromium).

Used by tests/test_gui_browser.py and scripts/screenshots.py; not imported by the GUI.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import contextlib

__all__ = ["CHROMIUM", "CHROMEDRIVER", "headless_chromium", "browser_available"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_available() -> Optional[str]:
    """None when selenium, chromium and chromedriver are there, else what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "pip package selenium"
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            return f"{exe} (Debian packages chromium, chromium-driver)"
    return None


@contextlib.contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator[object]:
    """A selenium Chrome driver on the system Chromium, headless, with a throw-away
    profile and every background network feature off; quit and cleaned up on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="pscalib-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
