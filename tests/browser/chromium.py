"""Debian's Chromium for the browser tests: where it is, and how they launch it through Playwright.

Playwright cannot download its own browser here, so the tests use Debian's (`apt-get install
chromium`; `make test-browser` and `.ci/run` install it) and skip, saying so, when it is missing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: Mark a browser test module with it: the tests skip, with the reason, when Chromium is missing.
needs_chromium = [pytest.mark.browser,
                  pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def launch_chromium(playwright):
    """Headless Chromium, without the background traffic (updates, sync, QUIC) a fresh profile makes."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"])
