"""The kit where students meet it: a real JupyterLab on localhost, driven by Chromium through Playwright.

Opens 07_speedrun.ipynb (quick profile: the course's shortest training notebook, so that CI does
not train notebook 01's ResNet-18s a second time after nbval), runs all cells, waits for the end, and checks
that no cell shows an error, that the Animator's figure is redrawn in place (one output showing at
least two distinct renders, not a stack of figures), and that the progress bar is a widget.
A screenshot is saved to build/browser/.

Needs Debian's Chromium (`apt-get install chromium`; `make test-browser` and `.ci/run` install it)
and the `playwright` package (in requirements.lock). Skipped, with the reason, when either is
missing. It runs in `make test` (and so in CI) whenever Chromium is there.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chromium import launch_chromium, needs_chromium

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "07_speedrun.ipynb"
ARTIFACTS = REPO / "build" / "browser"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium

# Poll in the page: for every code cell, the image sources of its outputs, by output position.
SNAPSHOT_JS = """
() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map((cell, i) => {
  const outs = Array.from(cell.querySelectorAll('.jp-OutputArea-child'));
  return outs.map((o, j) => {
    const img = o.querySelector('img');
    return img ? img.getAttribute('src').slice(-200) : null;
  });
})
"""
SCROLL_TO_FIRST_IMAGE_JS = """
() => { const img = document.querySelector('.jp-Notebook .jp-OutputArea-output img');
        if (img) img.scrollIntoView({block: 'start'}); }
"""
KERNEL_IDLE_JS = """
() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return !!k && k.status === 'idle' && !document.querySelector('.jp-Dialog'); }
"""
PROMPTS_JS = """
() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'))
        .map(p => p.textContent.trim())
"""


def accept_kernel_dialog(page) -> None:
    """Click "Select" in JupyterLab's "Select Kernel" dialog when it is open (only that dialog)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator("button.jp-mod-accept").click()


def wait_for_idle_kernel(page, timeout_s: float = 120) -> None:
    """Wait until the notebook's kernel is connected and idle with no dialog open, so that
    'run all' is not lost. A fresh JupyterLab profile asks which kernel to start: take the
    notebook's own."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        accept_kernel_dialog(page)
        if page.evaluate(KERNEL_IDLE_JS):
            return
        time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / "no-kernel.png"))
    pytest.fail(f"the notebook's kernel was not idle within {timeout_s:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 over a copy of the notebooks, with a token."""
    work = tmp_path / "lab"
    shutil.copytree(REPO / "notebooks", work, ignore=shutil.ignore_patterns("results", "artifacts"))
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("CIFARKIT_HEADLESS", "CIFARKIT_RESULTS_DIR")}
    env.update(CIFARKIT_PROFILE="quick", CIFARKIT_RESULTS_DIR=str(work / "results"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=False", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, token
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_a_training_notebook_runs_in_jupyterlab(jupyterlab):
    url, token = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=60_000)
        wait_for_idle_kernel(page)
        # Do not return the command's promise: evaluate() would wait for the whole run, and the
        # polling below must watch the figure while it is being redrawn.
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

        renders: dict[tuple[int, int], set[str]] = {}
        deadline = time.monotonic() + 1200  # minutes on 2 cores
        started = False
        while time.monotonic() < deadline:
            for i, outs in enumerate(page.evaluate(SNAPSHOT_JS)):
                for j, src in enumerate(outs):
                    if src:
                        renders.setdefault((i, j), set()).add(src)
            accept_kernel_dialog(page)
            prompts = page.evaluate(PROMPTS_JS)
            busy = any("*" in pr for pr in prompts)
            started = started or busy
            if started and not busy and prompts and all(pr.strip("[]: ") for pr in prompts):
                break
            time.sleep(0.3)
        else:
            page.screenshot(path=str(ARTIFACTS / "timeout.png"), full_page=True)
            pytest.fail("the notebook did not finish within 20 minutes")
        for i, outs in enumerate(page.evaluate(SNAPSHOT_JS)):  # final state
            for j, src in enumerate(outs):
                if src:
                    renders.setdefault((i, j), set()).add(src)
        # JupyterLab scrolls inside its own panel: bring the first live figure into view first.
        page.evaluate(SCROLL_TO_FIRST_IMAGE_JS)
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / NOTEBOOK.replace(".ipynb", ".png")))

        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                              has_text="Traceback")
        assert errors.count() == 0, errors.first.inner_text()[:2000]
        assert not page.locator(".jp-OutputArea-output", has_text="Error:").filter(
            has_text="Traceback").count()

        live = {pos: srcs for pos, srcs in renders.items() if len(srcs) >= 2}
        assert live, "no output was redrawn in place: the Animator must update one display"
        cell, _ = next(iter(live))
        images_in_cell = [pos for pos in renders if pos[0] == cell]
        assert len(images_in_cell) < sum(len(s) for pos, s in renders.items() if pos[0] == cell), \
            "figures were stacked instead of updated in place"

        progress = page.locator(".jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output .widget-progress, "
                                ".jp-OutputArea-output .jupyter-widgets progress, "
                                ".jp-OutputArea-output [class*='widget-progress']")
        assert progress.count() > 0, "the tqdm progress bar did not render as a widget"
        browser.close()
