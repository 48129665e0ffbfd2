"""Tests for cifarkit.course.book: the site of a small executed run (tests/fixtures/book, run once per
session by the `book_run` fixture of conftest.py), its pages, and its one-line errors.

The real-browser checks of the same site (console, requests, images, rendered math) are in
tests/browser/test_book_site.py.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

for _module in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_revealjs"):  # the [book] extra (make test-oldest lacks it)
    pytest.importorskip(_module, reason="the book extra is not installed: pip install 'cifarkit[book]'")

import nbformat
import torch

from cifarkit.course import book as ck_book
from cifarkit.course.book import build_book, colab_url, external_references, run_case_rows
from cifarkit.course.summary import SYNTHETIC_LABEL, read_summary

from test_cli import run_cli

NOTEBOOKS = ("01_math", "02_second")
COLAB = "https://colab.research.google.com/github/cifarkit/cifarkit/blob/main/notebooks/{}.ipynb"


def one_line(exc: BaseException, *parts: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, (part, text)


def _copy_run(book_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(book_run, run)
    return run


def _edit_summary(run: Path, edit) -> None:
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    edit(summary)
    path.write_text(json.dumps(summary))


# ---------------------------------------------------------------- errors, before anything is written

def test_missing_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build_book(tmp_path / "nope", tmp_path / "site")
    one_line(info.value, "RUN_DIR", str(tmp_path / "nope"), "does not exist")
    assert not (tmp_path / "site").exists()


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        build_book(tmp_path / "run", tmp_path / "site")
    one_line(info.value, "RUN_DIR", "is a file")


def test_run_dir_without_summary(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "01_x.ipynb").write_text("{}")
    with pytest.raises(FileNotFoundError) as info:
        build_book(tmp_path / "run", tmp_path / "site")
    one_line(info.value, "RUN_DIR", "has no summary.json", "cifarkit run")


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("{not json", "not valid JSON"),
    ('{"notebooks": 3}', "'notebooks' must be a list"),
])
def test_malformed_summary_names_the_file(tmp_path, text, expected):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(text)
    with pytest.raises(ValueError) as info:
        build_book(tmp_path / "run", tmp_path / "site")
    one_line(info.value, str(tmp_path / "run" / "summary.json"), expected)


def test_summary_without_executed_notebooks(book_run, tmp_path):
    run = _copy_run(book_run, tmp_path)
    _edit_summary(run, lambda s: [nb.update(executed=None) for nb in s["notebooks"]])
    with pytest.raises(ValueError) as info:
        build_book(run, tmp_path / "site")
    one_line(info.value, "summary.json", "no executed notebook")


def test_executed_notebook_outside_the_run_is_refused(book_run, tmp_path):
    run = _copy_run(book_run, tmp_path)
    shutil.copyfile(run / "01_math.ipynb", tmp_path / "outside.ipynb")
    _edit_summary(run, lambda s: s["notebooks"][0].update(executed="../outside.ipynb"))
    with pytest.raises(ValueError) as info:
        build_book(run, tmp_path / "site")
    one_line(info.value, "'../outside.ipynb'", "outside the run directory")


def test_unreadable_executed_notebook(book_run, tmp_path):
    run = _copy_run(book_run, tmp_path)
    (run / "02_second.ipynb").write_text("{broken")
    with pytest.raises(ValueError) as info:
        build_book(run, tmp_path / "site")
    one_line(info.value, "02_second.ipynb", "not a readable notebook")


def test_out_dir_refusals_leave_the_folder_alone(book_run, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        build_book(book_run, tmp_path / "file")
    one_line(info.value, "--out", "is a file")

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError) as info:
        build_book(book_run, mine)
    one_line(info.value, "--out", str(mine), "not empty")
    assert (mine / "thesis.tex").read_text() == "keep me" and len(list(mine.iterdir())) == 1

    with pytest.raises(ValueError) as info:
        build_book(book_run, book_run / "site")
    one_line(info.value, "--out", "inside RUN_DIR")
    assert not (book_run / "site").exists()


def test_cli_errors_are_one_line(tmp_path):
    out = run_cli("book", str(tmp_path / "nope"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"cifarkit: error: RUN_DIR {str(tmp_path / 'nope')!r} does not exist"]
    out = run_cli("book")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "RUN_DIR" in out.stderr


# ---------------------------------------------------------------- the built site

def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_site_files(book_site, book_run):
    site = book_site.site
    assert book_site.index == site / "index.html" and book_site.index.is_file()
    assert [p.name for p in book_site.pages] == [f"{n}.html" for n in NOTEBOOKS]
    assert all(p.is_file() for p in book_site.pages)
    assert [p.name for p in book_site.slides] == ["01_math.slides.html", "02_second.slides.html",
                                                  "overview.slides.html"]
    assert (site / "search.html").is_file() and (site / "searchindex.js").is_file()
    for name in NOTEBOOKS:  # the download is the executed notebook itself, byte for byte
        assert (site / "notebooks" / f"{name}.ipynb").read_bytes() == (book_run / f"{name}.ipynb").read_bytes()
    assert not (site.parent / "jupyter_execute").exists()  # nothing written beside the site
    assert not list(book_run.glob("*.html"))  # nor in the run


def test_nothing_is_loaded_from_outside_the_site(book_site):
    assert book_site.external == [] == external_references(book_site.site)
    for page in [book_site.index, *book_site.pages, *book_site.slides]:
        text = _text(page)
        assert not re.search(r"(https?:)?//[\w.-]*(cdn|unpkg|googleapis|jsdelivr)", text), page.name
    index = _text(book_site.index)
    assert 'src="_static/mathjax/tex-chtml.js' in index
    assert (book_site.site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    deck = _text(book_site.slides[0])
    assert 'src="../_static/revealjs/dist/reveal.js"' in deck and 'src="../_static/mathjax/tex-chtml.js"' in deck
    assert (book_site.site / "_static" / "revealjs" / "dist" / "reveal.js").is_file()


def test_external_references_finds_what_would_load(tmp_path):
    (tmp_path / "slides").mkdir()
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example/x.js"></script><img alt="b" src="//cdn.example/b.png">'
        '<link rel="stylesheet" href="http://fonts.example/f.css"><a href="https://colab.example/nb">ok</a>'
        '<script src="_static/local.js"></script><img src="data:image/png;base64,AAAA">')
    (tmp_path / "slides" / "s.css").write_text("@import url(https://fonts.example/g.css); a {}")
    assert external_references(tmp_path) == [
        "a.html: https://cdn.example/x.js", "a.html: //cdn.example/b.png",
        "a.html: http://fonts.example/f.css", "slides/s.css: https://fonts.example/g.css"]


def test_landing_page(book_site, book_run):
    index = _text(book_site.index)
    assert SYNTHETIC_LABEL in index
    assert "narrative Jupyter notebooks" in index
    for name, title in zip(NOTEBOOKS, ("01. Math and a figure", "02. A second page")):
        assert f'href="{name}.html"' in index and title in index
    assert "Is a second page found by the search?" in index  # one line per notebook
    # the verdict counts: each fixture records one claim that holds and one that does not
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", index, re.S)
    counts = [re.sub(r"<[^>]+>", " ", r).split()[-4:] for r in rows if "Math and a figure" in r
              or "A second page" in r]
    assert counts == [["1", "1", "0", "0"], ["1", "1", "0", "0"]]
    summary = read_summary(book_run / "summary.json")
    plain = re.sub(r"<[^>]+>", "", index)
    for expected in ("random init (01); ImageNet weights (02)", "3 (01); 0 (02)", torch.__version__,
                     summary["started_at"], "CPU (test)", "quick"):
        assert expected in plain, expected
    assert 'href="slides/overview.slides.html"' in index


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page(book_site, name):
    page = _text(book_site.site / f"{name}.html")
    assert SYNTHETIC_LABEL in page
    verdicts = re.search(r'<div class="cifarkit-verdicts[^"]*">(.*?)</table>', page, re.S)
    assert verdicts, "no verdict table"
    assert "What this run showed" in verdicts.group(1)
    assert "Model a ends with the higher test accuracy" in verdicts.group(1)
    assert "does not hold" in verdicts.group(1)
    assert f'<a class="cifarkit-colab" href="{COLAB.format(name)}">' in page
    assert f'href="notebooks/{name}.ipynb" download' in page
    assert f'href="slides/{name}.slides.html"' in page
    assert "colab-badge.svg" not in page  # the badge image would load from the web
    # the header sits under the page title, before the notebook's own prose
    prose = "Does the loss" if name == "01_math" else "Is a second page"
    assert page.index("<h1>") < page.index("cifarkit-provenance") < page.index("cifarkit-verdicts") \
        < page.index(prose)
    assert ("seed 3" if name == "01_math" else "seed 0") in page
    assert len(re.findall(r'<img[^>]*src="_images/[^"]+\.png"', page)) == 1  # the figure
    for src in re.findall(r'<img[^>]*src="([^"]+)"', page):
        assert (book_site.site / src).is_file(), src


def test_math_is_left_for_mathjax(book_site):
    page = _text(book_site.site / "01_math.html")
    assert r'<span class="math notranslate nohighlight">\(L = -\log p_y\)</span>' in page
    assert r"\frac{\partial L}{\partial z_y} = p_y - 1" in page
    assert r"\sum_{i=1}^{n}" in page  # a text/latex output


def test_cli_rebuilds_over_a_previous_book(book_site, book_run, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(book_site.site, site)
    (site / "stale.html").write_text("old")
    out = run_cli("book", str(book_run), "--out", str(site))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(site / "index.html")
    assert "warning" not in out.stderr
    assert not (site / "stale.html").exists() and (site / "01_math.html").is_file()


# ---------------------------------------------------------------- pieces, without a build

def test_colab_url_comes_from_the_first_cell():
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({COLAB.format('x')})"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# X\n\n{badge}")])
    assert colab_url(nb) == COLAB.format("x")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# X"))
    assert colab_url(nb) is None
    assert colab_url(nbformat.v4.new_notebook()) is None


def test_web_images_become_text():
    text = ("[![Open In Colab](https://colab.example/badge.svg)](https://colab.example/nb)\n"
            "![a plot](https://example.org/p.png) and ![local](figures/x.png)")
    assert ck_book._strip_web_images(text) == ("[Open In Colab](https://colab.example/nb)\n"
                                               "a plot and ![local](figures/x.png)")


def test_case_rows_say_what_the_run_did_not_record(book_run):
    summary = read_summary(book_run / "summary.json")
    old = copy.deepcopy(summary)
    for nb in old["notebooks"]:
        nb["claims"] = []
        nb["metrics"].pop("torch_version")
    rows = dict(run_case_rows(old))
    assert rows["torch"] == "not recorded by this run"
    assert rows["Initial weights"].startswith("not recorded")
    assert rows["Seed"] == "not recorded by this run"  # no notebooks given, no parameters injected
    rows = dict(run_case_rows(summary))
    assert rows["torch"] == torch.__version__ and rows["Data source"] == SYNTHETIC_LABEL


def test_synthetic_warning_only_for_synthetic_runs(book_run):
    summary, pages = ck_book._read_run(book_run)
    assert SYNTHETIC_LABEL in ck_book._landing(summary, pages, {})
    assert all(SYNTHETIC_LABEL in ck_book._page_notebook(p, summary, {}).cells[1].source for p in pages)
    real = copy.deepcopy(summary)
    real.update(synthetic_data=False, data_source=["cifar10"])
    for nb in real["notebooks"]:
        nb["metrics"]["data_source"] = "cifar10"
    for page in pages:
        page.entry = next(nb for nb in real["notebooks"] if nb["name"] == page.entry["name"])
    assert SYNTHETIC_LABEL not in ck_book._landing(real, pages, {}).split("## The case")[0]
    assert not any(SYNTHETIC_LABEL in ck_book._page_notebook(p, real, {}).cells[1].source for p in pages)


def test_failed_notebook_page_says_so(book_run):
    summary, pages = ck_book._read_run(book_run)
    page = pages[0]
    page.entry = dict(page.entry, status="failed", claims=[], error="ValueError: boom (in cell [3])")
    nb = ck_book._page_notebook(page, summary, {})
    assert nb.cells[0].source == "# 01. Math and a figure"
    header = nb.cells[1].source
    assert "FAILED" in header and "ValueError: boom" in header
    assert "colab-badge" not in "".join(c.source for c in nb.cells if c.cell_type == "markdown")
