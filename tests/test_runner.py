"""Tests for cifarkit.runner (papermill runs of the fixture notebooks).

The fixture notebooks in tests/fixtures/notebooks run on the venv's
``python3`` kernel (jupyter_client starts it with the venv interpreter), so
no kernel has to be registered. All three are executed once per module.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from cifarkit.runner import (
    SYNTHETIC_LABEL,
    NotebookResult,
    ParameterError,
    RunResult,
    _prepare_out_dir,
    format_failures,
    list_notebooks,
    main_run,
    new_run_dir,
    notebook_parameters,
    parse_cli_parameters,
    run_notebooks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run all three fixtures once, from a temporary cwd, with a stale CIFARKIT_PROFILE set."""
    work = tmp_path_factory.mktemp("work")
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("CIFARKIT_PROFILE", "full")
        mp.delenv("CIFARKIT_RESULTS_DIR", raising=False)
        with contextlib.redirect_stdout(stdout):
            result = run_notebooks(
                FIXTURES, profile="quick",
                parameters={"epochs": 5, "lr": "0.25", "augment": True, "widths": (8,)},
            )
        env_after = {k: os.environ.get(k) for k in
                     ("CIFARKIT_PROFILE", "CIFARKIT_RESULTS_DIR", "CIFARKIT_HEADLESS")}
    return {"result": result, "work": work, "stdout": stdout.getvalue(), "env_after": env_after}


def _nb(result: RunResult, name: str) -> NotebookResult:
    return next(nb for nb in result.notebooks if nb.name == name)


# ---------------------------------------------------------------- run directory

def test_new_run_dir_names_and_collisions(tmp_path):
    now = datetime(2025, 1, 2, 3, 4, 5)
    first = new_run_dir(tmp_path / "runs", "quick", now=now)
    second = new_run_dir(tmp_path / "runs", "quick", now=now)
    third = new_run_dir(tmp_path / "runs", "quick", now=now)
    assert first.name == "20250102-030405-quick"
    assert second.name == "20250102-030405-quick-2"
    assert third.name == "20250102-030405-quick-3"
    assert all(p.is_dir() for p in (first, second, third))
    assert new_run_dir(tmp_path / "runs", "a/b c", now=now).name == "20250102-030405-a_b_c"


def test_default_run_dir_is_under_runs_of_cwd(run):
    run_dir = run["result"].run_dir
    assert run_dir.parent == (run["work"] / "runs").resolve()
    assert re.fullmatch(r"\d{8}-\d{6}-quick(-\d+)?", run_dir.name)


def test_existing_nonempty_out_is_refused(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        run_notebooks(FIXTURES, out=out, only=["03"], progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def test_existing_empty_out_is_used_and_missing_one_created(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _prepare_out_dir(empty) == empty
    fresh = _prepare_out_dir(tmp_path / "a" / "b")
    assert fresh.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        _prepare_out_dir(tmp_path / "file")


# ---------------------------------------------------------------- selection

def test_list_notebooks_and_only_prefixes():
    names = [p.name for p in list_notebooks(FIXTURES)]
    assert names == ["01_passing.ipynb", "02_failing.ipynb", "03_params.ipynb"]
    assert [p.name for p in list_notebooks(FIXTURES, ["03", "01"])] == ["01_passing.ipynb", "03_params.ipynb"]
    assert [p.name for p in list_notebooks(FIXTURES, "02")] == ["02_failing.ipynb"]
    with pytest.raises(ValueError) as info:
        list_notebooks(FIXTURES, ["01", "09"])
    message = str(info.value)
    assert "'09'" in message and "01_passing.ipynb" in message and "03_params.ipynb" in message
    with pytest.raises(FileNotFoundError):
        list_notebooks(FIXTURES / "nope")


# ---------------------------------------------------------------- parameter validation

def test_unknown_parameter_lists_valid_ones_per_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError) as info:
        run_notebooks(FIXTURES, parameters={"epoch": 2}, progress=False)
    message = str(info.value)
    assert "'epoch'" in message and "did you mean 'epochs'" in message
    # the fixtures declare different parameters, so the message lists them per notebook
    assert "01_passing.ipynb: n_points, seed" in message
    assert "03_params.ipynb: augment, epochs, lr, max_steps, model, widths" in message
    assert not (tmp_path / "runs").exists(), "validation must happen before a run dir is made"


def test_parameter_valid_for_only_the_selected_notebooks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # 'epochs' exists only in 03: selecting 01 alone makes it unknown
    with pytest.raises(ParameterError, match="valid parameters: n_points, seed"):
        run_notebooks(FIXTURES, only=["01"], parameters={"epochs": 2}, progress=False)


@pytest.mark.parametrize("name,value,expected", [
    ("epochs", "abc", "expects int"),
    ("epochs", 2.5, "expects int"),
    ("epochs", True, "expects int"),
    ("augment", "maybe", "expects bool"),
    ("model", 3, "expects str"),
    ("widths", 16, "expects list"),
])
def test_badly_typed_parameter_is_rejected(tmp_path, monkeypatch, name, value, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError) as info:
        run_notebooks(FIXTURES, only=["03"], parameters={name: value}, progress=False)
    assert expected in str(info.value) and repr(value) in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_profile_cannot_be_passed_as_parameter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match="profile"):
        run_notebooks(FIXTURES, parameters={"profile": "full"}, progress=False)


def test_unknown_kernel_fails_before_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no-such-kernel"):
        run_notebooks(FIXTURES, only=["03"], kernel_name="no-such-kernel", progress=False)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- CLI parsing

@pytest.fixture(scope="module")
def specs():
    return notebook_parameters(list_notebooks(FIXTURES))


def test_notebook_parameters_infers_kinds(specs):
    p = specs["03_params.ipynb"]
    assert {n: s.kind for n, s in p.items()} == {
        "profile": "str", "epochs": "int", "lr": "float", "model": "str",
        "augment": "bool", "widths": "list", "max_steps": "NoneType"}
    assert p["widths"].default == "[16, 32]"
    assert specs["02_failing.ipynb"].keys() == {"profile"}


def test_parse_cli_parameters_types(specs):
    parsed = parse_cli_parameters(
        ["epochs=7", "lr=1e-3", "model=resnet", "augment=yes", "widths=[8, 16]",
         "max_steps=100", "seed=3"], specs)
    assert parsed == {"epochs": 7, "lr": 0.001, "model": "resnet", "augment": True,
                      "widths": [8, 16], "max_steps": 100, "seed": 3}
    assert type(parsed["epochs"]) is int and type(parsed["lr"]) is float
    more = parse_cli_parameters(["lr=2", "augment=FALSE", "max_steps=None", "model='a=b'",
                                 "widths=(1, 2)"], specs)
    assert more == {"lr": 2.0, "augment": False, "max_steps": None, "model": "a=b", "widths": [1, 2]}
    assert type(more["lr"]) is float
    assert parse_cli_parameters(["augment=0", "epochs=null"], specs) == {"augment": False, "epochs": None}
    assert parse_cli_parameters(["model=3"], specs) == {"model": "3"}


@pytest.mark.parametrize("item,match", [
    ("epochs", "expected NAME=VALUE"),
    ("=3", "not a valid Python name"),
    ("2x=3", "not a valid Python name"),
    ("epochs=abc", "expects int"),
    ("lr=fast", "expects float"),
    ("augment=maybe", "expects bool"),
    ("widths=[1,", "expects list"),
    ("widths={\"a\": 1}", "expects list"),
    ("profile=full", "profile"),
    ("epoch=3", "did you mean 'epochs'"),
])
def test_parse_cli_parameters_errors(specs, item, match):
    with pytest.raises(ParameterError, match=re.escape(match)):
        parse_cli_parameters([item], specs)


def test_parse_cli_parameters_rejects_duplicates_and_accepts_other_spec_shapes(specs):
    with pytest.raises(ParameterError, match="more than once"):
        parse_cli_parameters(["epochs=1", "epochs=2"], specs)
    single = specs["03_params.ipynb"]
    assert parse_cli_parameters(["epochs=4"], single) == {"epochs": 4}
    with pytest.raises(ParameterError, match="valid parameters: augment, epochs"):
        parse_cli_parameters(["seed=1"], single)
    raw_defaults = {"epochs": 3, "name": "x", "flag": False}
    assert parse_cli_parameters(["epochs=9", "flag=true", "name=7"], raw_defaults) == {
        "epochs": 9, "flag": True, "name": "7"}
    guessed = parse_cli_parameters(["a=1", "b=0.5", "c=true", "d=[1, 2]", "e=hello", "f=None"], None)
    assert guessed == {"a": 1, "b": 0.5, "c": True, "d": [1, 2], "e": "hello", "f": None}


# ---------------------------------------------------------------- the run

def test_failing_notebook_does_not_stop_the_others(run):
    result = run["result"]
    assert [nb.name for nb in result.notebooks] == ["01_passing.ipynb", "02_failing.ipynb", "03_params.ipynb"]
    assert result.ok is False
    assert result.failed == ["02_failing.ipynb"]
    assert [nb.status for nb in result.notebooks] == ["ok", "failed", "ok"]
    failed = _nb(result, "02_failing.ipynb")
    assert failed.error.startswith("ValueError: fixture failure: deliberate")
    # the executed copy keeps the traceback, and execution stopped at the failing cell
    executed = nbformat.read(str(failed.output), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "ValueError"
    assert any("fixture failure" in line for line in errors[0].traceback)
    last = [c for c in executed.cells if c.cell_type == "code"][-1]
    assert "never reached" in last.source and last.outputs == []


def test_format_failures(run):
    text = format_failures(run["result"])
    assert "1 of 3" in text and "02_failing.ipynb" in text and "fixture failure" in text
    assert "01_passing" not in text
    ok_only = RunResult(run_dir=Path("r"), notebooks=[_nb(run["result"], "01_passing.ipynb")],
                        profile="quick", started_at="", duration_s=1.0,
                        summary_json=Path("r/summary.json"), summary_md=Path("r/summary.md"))
    assert ok_only.ok and format_failures(ok_only) == ""


def test_progress_lines_per_notebook(run):
    lines = run["stdout"].splitlines()
    for name, status in [("01_passing.ipynb", "ok"), ("02_failing.ipynb", "failed"), ("03_params.ipynb", "ok")]:
        matching = [ln for ln in lines if ln.startswith(name)]
        assert len(matching) == 1, run["stdout"]
        assert re.search(rf"{status}\s+\d+\.\d s", matching[0])


def test_kernel_environment_and_cwd(run):
    result = run["result"]
    metrics = _nb(result, "01_passing.ipynb").metrics
    assert metrics["env_results_dir"] == str(result.run_dir)
    assert metrics["env_headless"] == "1"
    assert metrics["env_profile"] is None  # removed for the kernel ...
    assert Path(metrics["cwd"]).resolve() == result.run_dir
    # ... and everything is restored afterwards
    assert run["env_after"] == {"CIFARKIT_PROFILE": "full", "CIFARKIT_RESULTS_DIR": None,
                                "CIFARKIT_HEADLESS": os.environ.get("CIFARKIT_HEADLESS")}


def test_parameters_injected_only_where_declared(run):
    result = run["result"]
    params = _nb(result, "03_params.ipynb")
    assert params.parameters == {"profile": "quick", "epochs": 5, "lr": 0.25, "augment": True,
                                 "widths": [8]}
    m = params.metrics
    assert (m["epochs"], m["lr"], m["augment"], m["widths"], m["model"]) == (5, 0.25, True, [8], "tiny")
    assert m["types"] == {"epochs": "int", "lr": "float", "model": "str", "augment": "bool",
                          "widths": "list", "max_steps": "NoneType"}
    passing = _nb(result, "01_passing.ipynb")
    assert passing.parameters == {"profile": "quick"}
    executed = nbformat.read(str(passing.output), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert 'profile = "quick"' in injected[0].source and "epochs" not in injected[0].source


def test_summary_json(run):
    result = run["result"]
    summary = json.loads(result.summary_json.read_text())
    assert summary["profile"] == "quick"
    assert summary["ok"] is False and summary["failed"] == ["02_failing.ipynb"]
    assert summary["device"] == ["cpu"]
    assert summary["precision"] == ["fp32", "bf16"]
    assert summary["data_source"] == ["synthetic", "cifar10"]
    assert summary["synthetic_data"] is True
    assert summary["parameters"]["epochs"] == 5
    assert summary["duration_s"] > 0 and summary["started_at"]
    by_name = {nb["name"]: nb for nb in summary["notebooks"]}
    assert by_name["01_passing.ipynb"]["metrics"]["final_acc"] == 0.4321
    assert by_name["01_passing.ipynb"]["figures"] == ["figures/01_passing-1.png", "figures/01_passing-2.png"]
    assert by_name["02_failing.ipynb"]["status"] == "failed"
    assert by_name["02_failing.ipynb"]["metrics"] is None
    assert "fixture failure" in by_name["02_failing.ipynb"]["error"]
    assert all(nb["duration_s"] > 0 for nb in summary["notebooks"])
    assert summary["figures"] == ["figures/01_passing-1.png", "figures/01_passing-2.png"]


def test_summary_markdown(run):
    md = run["result"].summary_md.read_text()
    assert md.startswith("# cifarkit run")
    assert f"**Warning: {SYNTHETIC_LABEL}.**" in md
    assert "| Data source | SYNTHETIC (not CIFAR-10), cifar10 |" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| 02_failing.ipynb"))
    assert "**FAILED**" in row and "ValueError: fixture failure: deliberate" in row
    row = next(ln for ln in md.splitlines() if ln.startswith("| 01_passing.ipynb"))
    assert "| ok |" in row and SYNTHETIC_LABEL in row
    assert "### 03_params.ipynb" in md
    assert "| final_acc | 0.4321 |" in md
    assert "| history.train_loss | [2.3, 1.9, 1.5] |" in md
    assert "![01_passing.ipynb figure 2](figures/01_passing-2.png)" in md


def test_figures_extracted_as_png(run):
    result = run["result"]
    passing = _nb(result, "01_passing.ipynb")
    assert [f.name for f in passing.figures] == ["01_passing-1.png", "01_passing-2.png"]
    executed = nbformat.read(str(passing.output), as_version=4)
    pngs = [o.data["image/png"] for c in executed.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 2
    for path, encoded in zip(passing.figures, pngs):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert data == base64.b64decode(encoded)
    assert pngs[0] != pngs[1]
    assert sorted(p.name for p in (result.run_dir / "figures").iterdir()) == [
        "01_passing-1.png", "01_passing-2.png"]


def test_metrics_files_are_in_the_run_dir(run):
    run_dir = run["result"].run_dir
    assert sorted(p.name for p in run_dir.glob("*.metrics.json")) == [
        "01_passing.metrics.json", "03_params.metrics.json"]
    assert sorted(p.name for p in run_dir.glob("*.ipynb")) == [
        "01_passing.ipynb", "02_failing.ipynb", "03_params.ipynb"]


def test_main_run_for_the_cli(tmp_path, monkeypatch, capsys):
    from argparse import Namespace

    monkeypatch.chdir(tmp_path)
    bad = Namespace(profile="quick", only="03", out=None, notebooks=str(FIXTURES), parameter=["epochs=x"])
    with pytest.raises(ParameterError, match="expects int"):
        main_run(bad)
    args = Namespace(profile="full", only="02,03", out="myrun", notebooks=str(FIXTURES),
                     parameter=["epochs=2", "widths=[4, 4]"])
    assert main_run(args) == 1
    err = capsys.readouterr().err
    assert "1 of 2 notebook(s) failed" in err
    assert "  - 02_failing.ipynb: ValueError" in err and "  - 03_params" not in err
    metrics = json.loads((tmp_path / "myrun" / "03_params.metrics.json").read_text())
    assert (metrics["profile"], metrics["epochs"], metrics["widths"]) == ("full", 2, [4, 4])
