"""The book as a reader sees it: the site of a small executed run, served from 127.0.0.1 and opened
in Chromium through Playwright.

The run is tests/fixtures/book executed once by the runner (the `book_run` / `book_site` fixtures of
tests/conftest.py: seconds, not the course notebooks). For the landing page and every notebook page:
no console error, no request that leaves 127.0.0.1 (each one is recorded and aborted), every image
loaded, the math rendered by MathJax with no raw ``$...$`` left, the verdict table there, and on a
notebook page the Colab link of that notebook and a download that serves its ``.ipynb``. The search
page finds a word of one page. Screenshots of the landing page and of a notebook page go to
build/browser/.

Skipped, with the reason, when Debian's Chromium or Playwright is missing (see chromium.py).
"""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import nbformat
import pytest

from chromium import launch_chromium, needs_chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "browser"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium

# The page's visible text outside code blocks, where a `$...$` left unrendered would show.
PROSE_JS = """
() => { const main = document.querySelector('main').cloneNode(true);
        main.querySelectorAll('pre, code, mjx-container, script, .highlight').forEach(e => e.remove());
        return main.innerText; }
"""
IMAGES_JS = """
async () => { const imgs = Array.from(document.images);
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  return imgs.map(img => ({src: img.getAttribute('src'), width: img.naturalWidth})); }
"""
# MathJax done typesetting (pages without math do not load it).
MATHJAX_DONE_JS = """
() => !document.querySelector('script[src*="mathjax"]')
      || (window.MathJax && MathJax.startup && MathJax.startup.promise && MathJax.startup.promise.then(() => true))
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(book_site):
    """The built site over HTTP on 127.0.0.1 (a thread of this process); yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(book_site.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


def open_page(browser, base: str, path: str):
    """A new page at `path`, after MathJax has finished; returns (page, console errors, requests
    that left the site). Every request outside `base` is aborted as well as recorded."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))

    def route(r):
        if r.request.url.startswith(base + "/"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(f"{base}/{path}", wait_until="load")
    page.wait_for_function(MATHJAX_DONE_JS, timeout=30_000)
    page.wait_for_load_state("networkidle")
    return page, errors, outside


def check_page(page, errors, outside, name: str) -> None:
    assert errors == [], f"{name}: console errors {errors}"
    assert outside == [], f"{name}: requests outside 127.0.0.1 {outside}"
    images = page.evaluate(IMAGES_JS)
    broken = [img["src"] for img in images if not img["width"]]
    assert not broken, f"{name}: images that did not load {broken}"
    assert page.locator("mjx-container").count() > 0, f"{name}: no formula rendered by MathJax"
    prose = page.evaluate(PROSE_JS)
    for raw in ("$", "\\(", "\\["):
        assert raw not in prose, f"{name}: raw math left in the text: {prose[prose.index(raw) - 60:][:160]!r}"


def test_landing_page(browser, served, book_site):
    page, errors, outside = open_page(browser, served, "index.html")
    check_page(page, errors, outside, "index.html")
    assert page.locator(".admonition.warning", has_text="SYNTHETIC (not CIFAR-10)").count() == 1
    table = page.locator("table", has_text="does not hold").first
    for name in ("01. Math and a figure", "02. A second page"):
        row = table.locator("tr", has_text=name)
        assert row.count() == 1, name
        assert row.locator("td").all_inner_texts()[-4:] == ["1", "1", "0", "0"]
    assert page.locator("table", has_text="Initial weights").count() == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "book-landing.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("name", ["01_math", "02_second"])
def test_notebook_page(browser, served, book_site, book_run, name):
    page, errors, outside = open_page(browser, served, f"{name}.html")
    check_page(page, errors, outside, f"{name}.html")
    assert page.locator("img").count() >= 1  # the notebook's figure
    assert page.locator(".admonition.warning", has_text="SYNTHETIC (not CIFAR-10)").count() == 1
    verdicts = page.locator(".cifarkit-verdicts table")
    assert verdicts.count() == 1 and verdicts.locator("tbody tr").count() == 2
    assert "Model a ends with the higher test accuracy" in verdicts.inner_text()

    first_cell = nbformat.read(str(book_run / f"{name}.ipynb"), as_version=4).cells[0].source
    colab = page.locator("a.cifarkit-colab").get_attribute("href")
    assert colab.startswith("https://colab.research.google.com/github/") and colab.endswith(f"/{name}.ipynb")
    assert f"({colab})" in first_cell  # the notebook's own badge URL

    download = page.locator("a.cifarkit-download").get_attribute("href")
    status = page.evaluate("async href => (await fetch(href)).status", download)
    assert status == 200 and download.endswith(f"{name}.ipynb")
    slides = page.locator("a.cifarkit-slides").get_attribute("href")
    assert page.evaluate("async href => (await fetch(href)).status", slides) == 200
    if name == "01_math":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "book-notebook.png"), full_page=True)
    page.close()


def test_search_works_offline(browser, served):
    page, errors, outside = open_page(browser, served, "search.html?q=zebracorn")
    page.wait_for_selector("#search-results li", timeout=30_000)
    results = page.locator("#search-results li")
    assert results.count() == 1 and "A second page" in results.inner_text()
    assert errors == [] and outside == []
    page.close()


def test_slides_deck_runs_offline(browser, served):
    page, errors, outside = open_page(browser, served, "slides/01_math.slides.html")
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
    assert errors == [] and outside == []
    assert page.locator("mjx-container").count() > 0
    page.close()
