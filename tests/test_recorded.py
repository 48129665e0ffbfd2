"""Recorded sentences: generated from the records, and a notebook whose sentence drifts fails."""
import json
import shutil
from pathlib import Path

import pytest

from cifarkit.course import recorded
from cifarkit.course.recorded import Records, claim_value, render, spans, stale_spans, update_notebooks, update_text

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def fake_records() -> Records:
    def claim(name, verdict, evidence):
        return {"name": name, "statement": name, "verdict": verdict, "evidence": evidence}
    lessons = {"machine": "Test CPU, 2 cores", "measured": "2026-01-02 03:04", "runs": {
        "synthetic seed 0": {"05_x.ipynb": {"seconds": 30.4, "claims": [
            claim("ratio", "holds", "removed / kept 0.18; claimed < 0.5"),
            claim("gap", "holds", "a 60.0% [57.0%, 63.0%] vs b 40.0% [37.0%, 43.0%]: difference +20 points, 95% "
                  "interval [16, 24]; claimed > 0 points"),
            claim("share", "holds", "never-seen share 69.5%; claimed > 50.0%")]}},
        "CIFAR-10 copy seed 0": {"05_x.ipynb": {"seconds": 45.6, "claims": [
            claim("ratio", "inconclusive", "removed / kept 0.22 (3 seeds, sd 0.01); claimed < 0.5"),
            claim("gap", "not testable here", "a 50.0% vs b 52.0%: difference -2 points, 95% interval [-5, 1]"),
            claim("share", "holds", "never-seen share 69.6% [69.0%, 70.2%]; claimed > 50.0%")]}}}}
    speedrun = {"timing": {"table": ["| a | b |", "| --- | --- |", "| 1 | 2 |"]}}
    accuracy = {"run-8ep": {"test_acc": 0.9118, "train_minutes": 5.84, "tta": ""}}
    run = {"wall_s": 600.0, "notebooks": {"05": {"seconds": 30.4}}}
    cpu_modes = {"suite_by_cpu": {"CPU A (family 1, model 2; AVX2)": {
        "measured": "2026-01-02 03:04", "runs": {"current avx2": [run], "baseline avx2": [run]}}}}
    return Records(lessons=lessons, speedrun=speedrun, accuracy=accuracy, cpu_modes=cpu_modes)


def test_render_each_kind_of_key():
    r = fake_records()
    source = "`bench/lessons_quick.json`, 2 runs: synthetic seed 0; CIFAR-10 copy seed 0; Test CPU, 2 cores, 2026-01-02"
    assert render("runtime 05", r).startswith(
        "Its quick profile took 30 s on a 2-core CPU A (family 1, model 2; AVX2) (AVX2 only), where the whole "
        "quick suite took 10.0 min (2026-01-02) (`bench/cpu_modes.json`). No CPU with native bf16 has timed")
    assert render("sweep 05 ratio", r) == (f"In the recorded quick sweep ({source}) this claim's verdicts were: "
                                          "*holds* 1, *inconclusive* 1.")
    assert render("sweep 05 ratio copy", r).endswith("1 run: CIFAR-10 copy seed 0; Test CPU, 2 cores, 2026-01-02) "
                                                     "this claim's verdicts were: *inconclusive* 1.")
    assert render("values 05 ratio synthetic", r).endswith("the measured \u201cremoved / kept\u201d was 0.18 in every run.")
    assert render("notebook 05", r) == (f"In the recorded quick sweep ({source}) the 6 verdicts of this notebook's "
                                        "claims were: *holds* 4, *inconclusive* 1, *not testable here* 1.")
    with pytest.raises(ValueError, match="data source 'cifar'"):
        render("sweep 05 ratio cifar", r)
    assert render("values 05 ratio", r).endswith("the measured \u201cremoved / kept\u201d ranged from 0.18 to 0.22.")
    one = "`bench/lessons_quick.json`, 1 run: synthetic seed 0; Test CPU, 2 cores, 2026-01-02"
    assert render("values 05 gap", r) == f"In the recorded quick sweep ({one}) the difference was 20 points in every run."
    assert render("values 05 share", r).endswith("\u201cnever-seen share\u201d ranged from 69.5% to 69.6%.")
    assert render("speedrun timing", r) == "\n| a | b |\n| --- | --- |\n| 1 | 2 |\n"
    assert render("speedrun cell timing 1 2", r) == "2"
    assert render("accuracy run-8ep test_acc", r) == "91.2%" and render("accuracy run-8ep train_minutes", r) == "6"


def test_bad_keys_say_what_is_wrong():
    r = fake_records()
    with pytest.raises(ValueError, match="unknown key 'runtimes 05'"):
        render("runtimes 05", r)
    with pytest.raises(KeyError, match="notebook '07' has no timed quick suite"):
        render("runtime 07", r)
    with pytest.raises(KeyError, match="no claim 'nope'"):
        render("sweep 05 nope", r)
    with pytest.raises(KeyError, match="has no 'ablation'"):
        render("speedrun ablation", r)
    with pytest.raises(KeyError, match="no row 'x'"):
        render("speedrun cell timing x 1", r)
    with pytest.raises(ValueError, match="column '3'"):
        render("speedrun cell timing 1 3", r)
    with pytest.raises(ValueError, match="no number 'tta'"):
        render("accuracy run-8ep tta", r)


def test_claim_value_reads_comparisons_and_estimates():
    assert claim_value("x 1.0% vs y 2.0%: difference -1.5 points, 95% interval [-3, 0]; claimed > 0 points") == \
        ("the difference", -1.5, True)
    assert claim_value("speed-up 2.947; claimed > 1.5") == ("speed-up", 2.947, False)
    assert claim_value("fine-tuned 10% - control -0.6% [-1.2%, 0.0%]; claimed > -2.0%") == \
        ("fine-tuned 10% - control", -0.6, True)
    with pytest.raises(ValueError, match="no value"):
        claim_value("")


def test_update_text_rewrites_only_the_marked_span():
    r = fake_records()
    text = "Before. <!-- recorded: runtime 05 -->It took a minute.<!-- /recorded --> After."
    new = update_text(text, r)
    assert new.startswith("Before. <!-- recorded: runtime 05 -->Its quick profile took 30 s")
    assert new.endswith("records what that gains).<!-- /recorded --> After.")
    assert spans(new) == [("runtime 05", render("runtime 05", r))]
    # an inline span never starts a line (Markdown would render that line as raw HTML)
    assert update_text("Time:\n<!-- recorded: runtime 05 -->x<!-- /recorded -->", r).startswith(
        "Time: <!-- recorded: runtime 05 -->Its quick")
    block = update_text("Table:\n<!-- recorded: speedrun timing -->\nold\n<!-- /recorded -->", r)
    assert block == "Table:\n<!-- recorded: speedrun timing -->\n| a | b |\n| --- | --- |\n| 1 | 2 |\n<!-- /recorded -->"


def test_the_notebooks_recorded_sentences_match_the_records():
    assert sum(len(spans(json.dumps(json.loads(p.read_text())))) for p in NOTEBOOKS) >= 7
    stale = stale_spans(NOTEBOOKS)
    assert not stale, "recorded sentences out of date (run `python -m cifarkit.course.recorded`):\n" + "\n".join(stale)


def test_an_out_of_date_sentence_fails_and_update_fixes_it(tmp_path):
    copy = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], copy)
    nb = json.loads(copy.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and "<!-- recorded:" in "".join(c["source"]))
    text = "".join(cell["source"])
    key, generated = spans(text)[0]
    cell["source"] = text.replace(generated, "It takes a minute or two.").splitlines(keepends=True)
    copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    stale = stale_spans([copy])
    assert len(stale) == 1 and key in stale[0] and "a minute or two" in stale[0]
    assert update_notebooks([copy]) == [copy]
    assert stale_spans([copy]) == [] and copy.read_text() == NOTEBOOKS[0].read_text()


def test_main_check_reports_and_exits_nonzero(tmp_path, capsys):
    copy = tmp_path / "05_x.ipynb"
    copy.write_text(json.dumps({"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source":
                                           ["<!-- recorded: runtime 01 -->old<!-- /recorded -->"]}]}))
    assert recorded.main(["--check", str(copy)]) == 1
    assert "'runtime 01'" in capsys.readouterr().out
