"""Tests for cifarkit.course.slides: decks built from a real run of the fixture notebooks."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cifarkit.course.runner import run_notebooks
from cifarkit.course.slides import build_slides, overview_notebook, prepare_for_slides

from test_runner import FIXTURE_SCHEMA

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
IMG_DATA = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One run of the three fixtures, then its decks."""
    tmp = tmp_path_factory.mktemp("slides")
    result = run_notebooks(FIXTURES, out=tmp / "runs" / "fixture-run", progress=False, schema=FIXTURE_SCHEMA)
    paths = build_slides(result.run_dir, out_dir=tmp / "slides")
    return {"result": result, "paths": paths, "dest": tmp / "slides" / "fixture-run"}


def _slide_types(nb):
    return [(c.cell_type, c.metadata.get("slideshow", {}).get("slide_type")) for c in nb.cells]


def _figure_b64(result):
    return [base64.b64encode((result.run_dir / f).read_bytes()).decode("ascii")
            for f in json.loads(result.summary_json.read_text())["figures"]]


def test_decks_written_per_notebook_plus_overview(built):
    dest = built["dest"]
    assert [p.name for p in built["paths"]] == [
        "01_passing.slides.html", "02_failing.slides.html", "03_params.slides.html",
        "overview.slides.html"]
    assert all(p.parent == dest and p.stat().st_size > 1000 for p in built["paths"])
    deck = (dest / "01_passing.slides.html").read_text()
    assert "https://unpkg.com/reveal.js" in deck  # CDN reveal.js, as nbconvert does
    assert 'class="reveal"' in deck


def test_overview_embeds_every_figure_and_marks_synthetic(built):
    overview = (built["dest"] / "overview.slides.html").read_text()
    embedded = IMG_DATA.findall(overview)
    figures = _figure_b64(built["result"])
    assert len(figures) == 2
    assert embedded == figures  # in run order, as base64 <img> tags
    assert "SYNTHETIC (not CIFAR-10)" in overview
    assert "02_failing.ipynb" in overview and "FAILED" in overview
    assert "0.4321" in overview  # a metric of 01_passing
    assert "figures/" not in overview  # nothing referenced by path: the deck is self-contained


def test_notebook_deck_shows_outputs_and_hides_code(built):
    deck = (built["dest"] / "01_passing.slides.html").read_text()
    assert IMG_DATA.findall(deck) == _figure_b64(built["result"])
    assert "A bar chart" in deck  # markdown
    assert "wrote 01_passing.metrics.json" in deck  # printed output
    assert "show_png" not in deck and "savefig" not in deck  # code input hidden
    assert '<div class="jp-InputPrompt' not in deck and '<div class="jp-OutputPrompt' not in deck


def test_tagged_notebook_keeps_its_slide_types(built):
    deck = (built["dest"] / "03_params.slides.html").read_text()
    assert '<span class="n">widths_total</span>' in deck  # tagged show-input (highlighted code)
    assert '<div class="jp-InputPrompt' not in deck  # no "In [n]:" even where code is shown
    assert "Parameter types fixture" in deck
    assert "wrote 03_params.metrics.json" not in deck  # tagged skip


def test_failed_notebook_deck_shows_the_error(built):
    deck = (built["dest"] / "02_failing.slides.html").read_text()
    assert "fixture failure: deliberate" in deck
    assert "about to fail" in deck


def test_inferred_slide_types_for_untagged_notebook(built):
    executed = nbformat.read(str(built["result"].run_dir / "01_passing.ipynb"), as_version=4)
    before = nbformat.writes(executed)
    prepared = prepare_for_slides(executed)
    assert nbformat.writes(executed) == before  # the input notebook is left alone
    types = _slide_types(prepared)
    # papermill's injected cell follows the parameters cell; both show nothing
    assert types == [
        ("markdown", "slide"),      # # Passing fixture
        ("code", "skip"),           # parameters
        ("code", "skip"),           # injected-parameters
        ("code", "skip"),           # setup, no output
        ("markdown", "slide"),      # ## A line
        ("code", "subslide"),       # figure 1
        ("markdown", "slide"),      # ## A bar chart
        ("code", "subslide"),       # figure 2 (+ print)
        ("markdown", "slide"),      # ## Results
        ("code", "-"),              # prints "wrote ..."
    ]
    assert all(c.metadata.get("transient", {}).get("remove_source") for c in prepared.cells
               if c.cell_type == "code")


def test_prepare_respects_tags_and_filters_noise():
    nb = new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("import warnings", outputs=[
            new_output("stream", name="stderr", text="UserWarning: noisy\n"),
            new_output("stream", name="stdout", text="kept line\n")]),
        new_code_cell("secret()", metadata={"tags": ["remove-cell"]}, outputs=[
            new_output("stream", name="stdout", text="gone\n")]),
        new_code_cell("x = 1", metadata={"tags": ["remove-output", "show-input"]}, outputs=[
            new_output("stream", name="stdout", text="dropped output\n")]),
        new_markdown_cell("### Detail"),
        new_code_cell("bar", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc"}, "text/plain": "0%|"})]),
    ])
    prepared = prepare_for_slides(nb)
    assert [c.source for c in prepared.cells] == ["# Title", "import warnings", "x = 1", "### Detail", "bar"]
    assert [o.text for o in prepared.cells[1].outputs] == ["kept line\n"]
    assert prepared.cells[2].outputs == [] and "transient" not in prepared.cells[2].metadata
    assert _slide_types(prepared) == [("markdown", "slide"), ("code", "-"), ("code", "-"),
                                      ("markdown", "subslide"), ("code", "skip")]

    tagged = new_notebook(cells=[
        new_markdown_cell("# One", metadata={"slideshow": {"slide_type": "slide"}}),
        new_markdown_cell("# Two"),
        new_code_cell("p", outputs=[new_output("display_data", data={"image/png": "iVBORw0KGgo="})]),
    ])
    assert _slide_types(prepare_for_slides(tagged)) == [
        ("markdown", "slide"), ("markdown", None), ("code", None)]


def test_all_hidden_notebook_still_makes_a_deck():
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    prepared = prepare_for_slides(nb)
    assert prepared.cells[0].cell_type == "markdown"
    assert prepared.cells[0].metadata.slideshow.slide_type == "slide"


def test_reveal_url_prefix_option_and_overview_notebook(built, tmp_path):
    nb = overview_notebook(built["result"].run_dir)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"]
    assert headings[:3] == ["# cifarkit run", "## Notebooks", "## 01_passing"]
    assert "### 01_passing: figure 2" in headings
    paths = build_slides(built["result"].run_dir, out_dir=tmp_path, reveal_url_prefix="reveal.js")
    deck = paths[-1].read_text()
    assert '"reveal.js/dist/reveal.js"' in deck and "unpkg.com/reveal.js" not in deck


def test_build_slides_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        build_slides(tmp_path / "missing", out_dir=tmp_path / "out")
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(FileNotFoundError, match="summary.json"):
        build_slides(tmp_path / "not-a-run", out_dir=tmp_path / "out")


# ---------------------------------------------------------------- only files of the run (issue 13.5)

def _copy_run(built, tmp_path):
    """A copy of the fixture run that a test may tamper with."""
    import shutil

    run = tmp_path / "run-copy"
    shutil.copytree(built["result"].run_dir, run, symlinks=True)
    return run


def _edit_summary(run, change):
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    change(summary)
    path.write_text(json.dumps(summary))


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "executed"])
def test_files_outside_the_run_are_never_embedded(built, tmp_path, how):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    run = _copy_run(built, tmp_path)
    if how == "dotdot":
        _edit_summary(run, lambda s: s["notebooks"][0].__setitem__("figures", ["../secret.txt"]))
    elif how == "absolute":
        _edit_summary(run, lambda s: s["notebooks"][0].__setitem__("figures", [str(secret)]))
    elif how == "symlink":
        (run / "figures" / "01_passing-1.png").unlink()
        (run / "figures" / "01_passing-1.png").symlink_to(secret)
    else:
        _edit_summary(run, lambda s: s["notebooks"][0].__setitem__("executed", "../secret.txt"))
    out = tmp_path / "slides"
    with pytest.raises(ValueError) as info:
        build_slides(run, out_dir=out)
    message = str(info.value)
    assert "outside the run directory" in message and "summary.json" in message and "\n" not in message
    assert not out.exists(), "nothing may be written"


def test_overview_shows_every_notebooks_verdict_table(built, tmp_path):
    run = _copy_run(built, tmp_path)
    claims = [
        {"name": "logits", "statement": "Logits train faster than softmax outputs", "verdict": "holds",
         "case": "SYNTHETIC data, quick profile", "evidence": "45.1% [41.9, 48.3] vs 20.2%", "reason": None},
        {"name": "gap", "statement": "The gap is larger on CIFAR-10", "verdict": "not testable here",
         "case": "SYNTHETIC data", "evidence": "", "reason": "needs real CIFAR-10"},
    ]
    _edit_summary(run, lambda s: s["notebooks"][2].__setitem__("claims", claims))
    nb = overview_notebook(run)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "| Claim | Verdict | Evidence | Case |" in text
    assert ("| Logits train faster than softmax outputs | **holds** | 45.1% [41.9, 48.3] vs 20.2% | "
            "SYNTHETIC data, quick profile |") in text
    assert "| The gap is larger on CIFAR-10 | **not testable here**: needs real CIFAR-10 | - |" in text
    assert "| 03_params.ipynb | 1 | 0 | 0 | 1 |" in text  # the counts on the notebooks slide
    assert "| holds | does not hold | inconclusive | not testable here |" in text


def test_overview_header_is_the_summary_table(built):
    from cifarkit.course.summary import read_summary, run_table_markdown

    summary = read_summary(built["result"].summary_json)
    nb = overview_notebook(built["result"].run_dir)
    assert "\n".join(run_table_markdown(summary)).strip() in nb.cells[0].source
