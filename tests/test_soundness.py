"""docs/soundness.md: every prose paragraph of the notebooks has a reviewed kind, and the file is current."""
import importlib.util
import json
import shutil

import pytest

from cifarkit.course.soundness import UNREVIEWED, classify, paragraph_key, paragraphs, render_markdown, unreviewed
from conftest import REPO


def review_module():
    spec = importlib.util.spec_from_file_location("soundness_review", REPO / "docs" / "soundness_review.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook(tmp_path, *markdown):
    path = tmp_path / "09_x.ipynb"
    cells = [{"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": text} for i, text in enumerate(markdown)]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_paragraphs_split_on_blank_lines_without_headings_or_badge(tmp_path):
    path = notebook(tmp_path, "# 09. Title\n\n[![Open In Colab](x)](y)\n\nFirst one,\nstill first.\n\n## Part\nSecond.",
                    "Table:\n<!-- recorded: speedrun timing -->\n| a |\n\n| b |\n<!-- /recorded -->\n\nLast.")
    got = [(p.cell, p.index, p.text) for p in paragraphs(path)]
    assert got == [("m0", 0, "First one,\nstill first."), ("m0", 1, "Second."),
                   ("m1", 0, "Table:\n<!-- recorded: speedrun timing -->\n| a |\n\n| b |\n<!-- /recorded -->"),
                   ("m1", 1, "Last.")]


def test_keys_follow_the_text_but_not_the_recorded_spans():
    a = paragraph_key("05_x.ipynb", "c", "It took <!-- recorded: runtime 05 -->30 s<!-- /recorded -->.")
    b = paragraph_key("05_x.ipynb", "c", "It took <!-- recorded: runtime 05 -->45 s<!-- /recorded -->.")
    assert a == b and a.startswith("05 c ")
    assert paragraph_key("05_x.ipynb", "c", "It  took\nlong.") == paragraph_key("05_x.ipynb", "c", "It took long.")
    assert paragraph_key("05_x.ipynb", "c", "It took longer.") != paragraph_key("05_x.ipynb", "c", "It took long.")


def test_classify_review_recorded_and_unreviewed(tmp_path):
    path = notebook(tmp_path, "A definition.\n\nThis run is fast.\n\nSee <!-- recorded: runtime 01 -->x<!-- /recorded -->.")
    first, second, third = paragraphs(path)
    review = {first.key: ("background", "a definition")}
    assert classify(first, review) == ("background", "a definition")
    assert classify(second, review) == (UNREVIEWED, "")
    assert classify(third, review) == (UNREVIEWED, ""), "the prose around a recorded span is read too"
    assert unreviewed([path], review) == [second, third]
    review[third.key] = ("recorded", "a pointer to the record")
    assert classify(third, review) == ("recorded", "generated: runtime 01; the rest: a pointer to the record")
    assert unreviewed([path], review) == [second]
    with pytest.raises(ValueError, match="kind 'opinion'"):
        classify(first, {first.key: ("opinion", "")})
    table = render_markdown([path], review, "runs X and Y")
    assert "| 09 | m0 | 2 | This run is fast. | **UNREVIEWED** |" in table and "runs X and Y" in table


def test_soundness_md_is_current_and_every_paragraph_is_reviewed():
    module = review_module()
    missing = unreviewed(module.NOTEBOOKS, module.REVIEW)
    assert not missing, "paragraphs not yet reviewed (add them to docs/soundness_review.py):\n" + "\n".join(
        f"{p.key}: {p.first_words}" for p in missing)
    expected = render_markdown(module.NOTEBOOKS, module.REVIEW, module.CHECKED_AGAINST)
    assert (REPO / "docs" / "soundness.md").read_text() == expected, \
        "docs/soundness.md is stale: run python docs/soundness_review.py"
    assert len(module.NOTEBOOKS) == 7 and expected.count("\n| 0") >= 150


def test_an_edited_paragraph_needs_a_new_review(tmp_path):
    module = review_module()
    source = module.NOTEBOOKS[0]
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    nb = json.loads(copy.read_text())
    cell = next(c for c in nb["cells"] if c.get("id") == "why")
    cell["source"] = ["".join(cell["source"]).replace("cross-entropy is", "cross-entropy, in this run, is")]
    copy.write_text(json.dumps(nb))
    changed = unreviewed([copy], module.REVIEW)
    assert [p.cell for p in changed] == ["why"] and "in this run" in changed[0].text
