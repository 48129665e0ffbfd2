"""Tests for cifarkit.course.runner (papermill runs of the fixture notebooks).

The fixture notebooks in tests/fixtures/notebooks run on the venv's
``python3`` kernel (jupyter_client starts it with the venv interpreter), so
no kernel has to be registered. All three are executed once per module.
"""
from __future__ import annotations

import ast
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

from cifarkit.course import params as ck_params
from cifarkit.course.params import SCHEMA, Bool, Float, Int, ListOf, Str, check_parameters
from cifarkit.course.notebook_params import ParameterError, list_notebooks, notebook_parameters, parse_cli_parameters
from cifarkit.course.runner import RunResult, _prepare_out_dir, format_failures, main_run, new_run_dir, run_notebooks
from cifarkit.course.summary import SYNTHETIC_LABEL, NotebookResult

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
REAL_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The kit's schema plus the fixture notebooks' own parameters (one line each, as in params.py).
FIXTURE_SCHEMA = {
    **SCHEMA,
    "n_points": Int(min=1, help="points on the line"),
    "lr": Float(min=0, min_inclusive=False, help="learning rate"),
    "model": Str(help="model name"),
    "augment": Bool(help="augment or not"),
    "widths": ListOf(Int(min=1), help="channel widths"),
    "max_steps": Int(min=1, none=True, help="stop early"),
}


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A tiny notebook: a ``parameters`` cell with `parameters`, then one code cell per string."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


#: A cell that records the kernel's environment in <stem>.metrics.json (stem from the file name).
ENV_CELL = """import json, os
from pathlib import Path
names = ["CIFARKIT_RESULTS_DIR", "CIFARKIT_ARTIFACTS", "CIFARKIT_NETWORK", "CIFARKIT_HEADLESS", "CIFARKIT_NOTEBOOK"]
out = Path(os.environ["CIFARKIT_RESULTS_DIR"]) / (STEM + ".metrics.json")
out.write_text(json.dumps({"env": {k: os.environ.get(k) for k in names}, "data_source": data_source}))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run all three fixtures once, from a temporary cwd, with a stale CIFARKIT_PROFILE set."""
    work = tmp_path_factory.mktemp("work")
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("CIFARKIT_PROFILE", "full")
        mp.delenv("CIFARKIT_RESULTS_DIR", raising=False)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            result = run_notebooks(
                FIXTURES, profile="quick",
                parameters={"epochs": 5, "lr": "0.25", "augment": True, "widths": (8,)},
                schema=FIXTURE_SCHEMA,
            )
        env_after = {k: os.environ.get(k) for k in
                     ("CIFARKIT_PROFILE", "CIFARKIT_RESULTS_DIR", "CIFARKIT_HEADLESS")}
    return {"result": result, "work": work, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "env_after": env_after}


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
        run_notebooks(FIXTURES, out=out, only=["03"], progress=False, schema=FIXTURE_SCHEMA)
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
        run_notebooks(FIXTURES, parameters={"epoch": 2}, progress=False, schema=FIXTURE_SCHEMA)
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
        run_notebooks(FIXTURES, only=["01"], parameters={"epochs": 2}, progress=False,
                      schema=FIXTURE_SCHEMA)


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
        run_notebooks(FIXTURES, only=["03"], parameters={name: value}, progress=False,
                      schema=FIXTURE_SCHEMA)
    assert expected in str(info.value) and repr(value) in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_profile_cannot_be_passed_as_parameter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match="profile"):
        run_notebooks(FIXTURES, parameters={"profile": "full"}, progress=False, schema=FIXTURE_SCHEMA)


def test_unknown_kernel_fails_before_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no-such-kernel"):
        run_notebooks(FIXTURES, only=["03"], kernel_name="no-such-kernel", progress=False,
                      schema=FIXTURE_SCHEMA)
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
    bad = Namespace(profile="quick", only="03", out=None, notebooks=str(FIXTURES), parameter=["epochs=x"],
                    schema=FIXTURE_SCHEMA)
    with pytest.raises(ParameterError, match="expects int"):
        main_run(bad)
    args = Namespace(profile="full", only="02,03", out="myrun", notebooks=str(FIXTURES),
                     parameter=["epochs=2", "widths=[4, 4]"], schema=FIXTURE_SCHEMA)
    assert main_run(args) == 1
    err = capsys.readouterr().err
    assert "1 of 2 notebook(s) failed" in err
    assert "  - 02_failing.ipynb: ValueError" in err and "  - 03_params" not in err
    metrics = json.loads((tmp_path / "myrun" / "03_params.metrics.json").read_text())
    assert (metrics["profile"], metrics["epochs"], metrics["widths"]) == ("full", 2, [4, 4])


# ---------------------------------------------------------------- the parameter schema (issue 13.3)

def test_every_course_notebook_parameter_is_in_the_schema_and_its_default_fits():
    specs = notebook_parameters(list_notebooks(REAL_NOTEBOOKS))
    assert len(specs) == 7
    for nb_name, nb_specs in specs.items():
        assert {"profile", "data_source", "epochs", "seed"} <= nb_specs.keys(), nb_name
        for name, spec in nb_specs.items():
            assert name in SCHEMA, f"{nb_name}: parameter {name!r} missing from cifarkit/course/params.py"
            default = ast.literal_eval(spec.default)
            assert SCHEMA[name].fits(default), f"{nb_name}: default {name} = {spec.default}"
    from cifarkit.course.notebook_params import schema_problems
    assert schema_problems(specs) == []


@pytest.mark.parametrize("item,accepted", [
    ("epochs=abc", "int >= 1 or None"),
    ("epochs=0", "int >= 1 or None"),
    ("epochs=2.5", "int >= 1 or None"),
    ("epochs=true", "int >= 1 or None"),
    ("epochs=nan", "int >= 1 or None"),
    ("seed=-1", "int >= 0"),
    ("data_source=bogus", "one of 'auto', 'cifar10', 'cifar10-unverified', 'synthetic'"),
    ("weights=bogus", "one of 'auto', 'imagenet' or None, or the path of an existing file"),
    ("weights=random", "or the path of an existing file"),
])
def test_cli_values_of_the_course_notebooks_are_checked_before_any_kernel(item, accepted):
    # notebook 03's `epochs = None` default used to accept anything, and 05's weights too
    specs = notebook_parameters(list_notebooks(REAL_NOTEBOOKS, ["03", "05"]))
    with pytest.raises(ParameterError) as info:
        parse_cli_parameters([item], specs)
    name, value = item.split("=", 1)
    message = str(info.value)
    assert message == f"parameter {name!r} expects {SCHEMA[name].accepts}, got {value!r}"
    assert accepted in message and "\n" not in message


def test_cli_values_that_fit_the_schema(tmp_path):
    specs = notebook_parameters(list_notebooks(REAL_NOTEBOOKS, ["05"]))
    state = tmp_path / "model.pt"
    state.write_bytes(b"x")
    parsed = parse_cli_parameters(["epochs=2", "seed=7", "data_source=synthetic", "weights=none"], specs)
    assert parsed == {"epochs": 2, "seed": 7, "data_source": "synthetic", "weights": None}
    assert parse_cli_parameters(["epochs=None", "weights=imagenet"], specs) == {"epochs": None,
                                                                               "weights": "imagenet"}
    assert parse_cli_parameters([f"weights={state}"], specs) == {"weights": str(state)}


def test_relative_weights_path_is_made_absolute_for_the_kernel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pt").write_bytes(b"x")
    assert SCHEMA["weights"].parse("w.pt", "weights") == str(tmp_path / "w.pt")
    with pytest.raises(ParameterError, match="'weights'"):
        SCHEMA["weights"].parse(str(tmp_path), "weights")  # a directory is not a weights file


def test_run_refuses_notebooks_whose_parameters_the_schema_lacks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError) as info:
        run_notebooks(FIXTURES, only=["01"], progress=False)  # n_points is not in the kit's schema
    message = str(info.value)
    assert "01_passing.ipynb declares parameter 'n_points'" in message and "cifarkit/course/params.py" in message
    assert not (tmp_path / "runs").exists()


def test_run_refuses_a_notebook_default_outside_the_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_notebook(tmp_path / "nbs" / "01_bad.ipynb", 'profile = "quick"\nepochs = 0\n', "pass")
    with pytest.raises(ParameterError, match=r"01_bad.ipynb: the default epochs = 0 does not fit"):
        run_notebooks(tmp_path / "nbs", progress=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("values,message", [
    ({"epochs": 0}, "parameter 'epochs' expects int >= 1 or None, got 0 (int)"),
    ({"epochs": "5"}, "parameter 'epochs' expects int >= 1 or None, got '5'"),  # no parsing in notebooks
    ({"seed": True}, "parameter 'seed' expects int >= 0, got True (bool)"),
    ({"data_source": "Synthetic"}, "parameter 'data_source' expects one of"),
    ({"nope": 1}, "parameter 'nope' is not in the parameter schema"),
])
def test_check_parameters_for_the_notebooks_setup(values, message):
    with pytest.raises(ParameterError) as info:
        check_parameters({"profile": "quick", **values}, where="notebook 03")
    assert str(info.value).startswith("notebook 03: " + message)
    good = {"profile": "full", "data_source": "auto", "epochs": None, "seed": 0, "weights": "auto"}
    assert check_parameters(good) == good
    assert check_parameters({"seeds": (0, 1)}) == {"seeds": [0, 1]}
    assert check_parameters({"seeds": 3, "stem": "cifar"}) == {"seeds": 3, "stem": "cifar"}


def test_adding_a_schema_entry_is_one_line():
    schema = {**SCHEMA, "depth": ck_params.Int(min=1, max=4, help="blocks per stage")}
    assert check_parameters({"depth": 4}, schema) == {"depth": 4}
    with pytest.raises(ParameterError, match=r"expects int >= 1 and <= 4, got 5"):
        check_parameters({"depth": 5}, schema)
    assert "depth: int >= 1 and <= 4 - blocks per stage" in ck_params.describe_schema(schema)


def test_profile_argument_is_checked_against_the_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=r"parameter 'profile' expects one of 'quick', 'full', got 'huge'"):
        run_notebooks(FIXTURES, profile="huge", progress=False, schema=FIXTURE_SCHEMA)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- kernel environment and output (13.6, 12.4)

def test_one_kernel_environment_per_run_and_clean_output(tmp_path, monkeypatch, capfd):
    """CIFARKIT_ARTIFACTS from the shell is overridden, the network is probed once for the whole
    run, no kernel TCP warning reaches the terminal, and a non-terminal gets no progress bar."""
    from cifarkit import data

    calls = []
    monkeypatch.setattr(data, "network_available", lambda: calls.append(1) or False, raising=False)
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("CIFARKIT_NETWORK", raising=False)
    for stem in ("01_env", "02_env"):
        write_notebook(tmp_path / "nbs" / f"{stem}.ipynb", 'profile = "quick"\ndata_source = "auto"\n',
                       ENV_CELL.replace("STEM", repr(stem)))
    result = run_notebooks(tmp_path / "nbs", out=tmp_path / "run")
    captured = capfd.readouterr()
    assert result.ok, format_failures(result)
    assert calls == [1], "the network is probed once per run, not once per notebook"
    for nb in result.notebooks:
        assert nb.metrics["env"] == {"CIFARKIT_RESULTS_DIR": str(result.run_dir),
                                     "CIFARKIT_ARTIFACTS": str(result.run_dir / "artifacts"),
                                     "CIFARKIT_NETWORK": "0", "CIFARKIT_HEADLESS": "1",
                                     "CIFARKIT_NOTEBOOK": nb.stem}  # each kernel its own file stem
    assert "CIFARKIT_NOTEBOOK" not in os.environ
    assert not (tmp_path / "elsewhere").exists()
    assert os.environ["CIFARKIT_ARTIFACTS"] == str(tmp_path / "elsewhere")  # restored
    assert "CIFARKIT_NETWORK" not in os.environ
    assert "without encryption" not in captured.err and "without encryption" not in captured.out
    assert "\r" not in captured.err and "notebooks:" not in captured.err  # no tqdm bar off a terminal
    lines = captured.out.splitlines()
    assert lines[0].startswith("network: not reachable (CIFARKIT_NETWORK=0 for every notebook)")
    assert "SYNTHETIC" in lines[0]
    assert [ln.split()[:2] for ln in lines[1:3]] == [["01_env.ipynb", "ok"], ["02_env.ipynb", "ok"]]


def test_network_probe_rules(monkeypatch):
    from cifarkit import data
    from cifarkit.course.runner import _probe_network

    monkeypatch.setattr(data, "network_available", lambda: True, raising=False)
    assert _probe_network() == "1"
    monkeypatch.setattr(data, "network_available", lambda: 0, raising=False)
    assert _probe_network() == "0"
    monkeypatch.delattr(data, "network_available")
    assert _probe_network() is None  # works before data.network_available exists

    def broken():
        raise OSError("no route")
    monkeypatch.setattr(data, "network_available", broken, raising=False)
    assert _probe_network() is None


def test_fixture_run_writes_no_progress_bar_off_a_terminal(run):
    assert "\r" not in run["stderr"] and "notebooks:" not in run["stderr"]


def test_notebooks_without_auto_data_are_not_probed(run, monkeypatch):
    # the fixtures declare no data_source: the run above never imported cifarkit.data for a probe
    from cifarkit.course.runner import _wants_auto_data
    specs = notebook_parameters(list_notebooks(FIXTURES))
    assert not _wants_auto_data(specs, {name: {} for name in specs})
    real = notebook_parameters(list_notebooks(REAL_NOTEBOOKS, ["01"]))
    assert _wants_auto_data(real, {"01_softmax_vs_logits.ipynb": {}})
    assert not _wants_auto_data(real, {"01_softmax_vs_logits.ipynb": {"data_source": "synthetic"}})


# ---------------------------------------------------------------- verdicts in the reports (issue 12.1)

class _Claim:
    """Stands in for the lead's claim objects: anything with to_dict() works."""

    def __init__(self, **fields):
        self.fields = fields

    def to_dict(self):
        return dict(self.fields)


CLAIMS = [
    {"name": "logits", "statement": "Logits beat softmax outputs", "verdict": "holds",
     "case": "SYNTHETIC data, random init, quick profile",
     "evidence": "logits 45.1% [41.9, 48.3] vs softmax 20.2% [17.7, 22.8], 3 seeds, sd 1.2", "reason": None},
    _Claim(name="grad", statement="Softmax gradients vanish", verdict="does not hold",
           case="quick profile", evidence="|g| 0.02 vs 0.03", reason="only 5 steps"),
    {"name": "cifar", "statement": "Holds on CIFAR-10 too", "verdict": "not testable here",
     "case": "SYNTHETIC data", "evidence": "", "reason": "no CIFAR-10 copy"},
]


def _report_for(metrics_by_name, tmp_path):
    from cifarkit.course.runner import _read_metrics
    from cifarkit.course.summary import summary_dict, render_summary_markdown

    nbs = []
    for name in metrics_by_name:
        metrics, note = _read_metrics(tmp_path / f"{Path(name).stem}.metrics.json")
        nbs.append(NotebookResult(name=name, path=Path(name), output=None, status="ok", duration_s=1.0,
                                  metrics=metrics, metrics_note=note))
    summary = summary_dict(nbs, tmp_path, "quick", {}, "now", 2.0, None)
    return summary, render_summary_markdown(summary)


def test_record_results_stores_checked_claims_and_the_report_shows_verdicts(tmp_path, monkeypatch, capsys):
    from cifarkit.course.results import record_results

    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path))
    path = record_results("01_demo", {"final_acc": 0.5}, claims=CLAIMS)
    assert "1 metrics and 3 claim(s)" in capsys.readouterr().out
    stored = json.loads(path.read_text())["claims"]
    assert [c["verdict"] for c in stored] == ["holds", "does not hold", "not testable here"]
    assert stored[1] == CLAIMS[1].to_dict()
    record_results("02_quiet", {"final_acc": 0.25})
    summary, md = _report_for(["01_demo.ipynb", "02_quiet.ipynb"], tmp_path)

    by_name = {nb["name"]: nb for nb in summary["notebooks"]}
    assert by_name["01_demo.ipynb"]["claims"] == stored and by_name["02_quiet.ipynb"]["claims"] == []
    assert summary["verdicts"] == {
        "total": {"holds": 1, "does not hold": 1, "inconclusive": 0, "not testable here": 1},
        "by_notebook": {"01_demo.ipynb": {"holds": 1, "does not hold": 1, "inconclusive": 0,
                                          "not testable here": 1}}}
    assert "## Verdicts" in md
    assert "| Notebook | holds | does not hold | inconclusive | not testable here |" in md
    assert "| 01_demo.ipynb | 1 | 1 | 0 | 1 |" in md
    assert "No claims recorded by: 02_quiet.ipynb." in md
    assert ("| Logits beat softmax outputs | **holds** | logits 45.1% [41.9, 48.3] vs softmax 20.2% "
            "[17.7, 22.8], 3 seeds, sd 1.2 | SYNTHETIC data, random init, quick profile |") in md
    assert "| Softmax gradients vanish | **does not hold**: only 5 steps | \\|g\\| 0.02 vs 0.03 |" in md
    assert "| claims" not in md, "claims must not be dumped again in the metrics table"
    assert "| final_acc | 0.5 |" in md
    assert md.index("## Verdicts") < md.index("## Results per notebook")


@pytest.mark.parametrize("claims,message", [
    ([{"name": "a", "statement": "s", "verdict": "maybe"}], "verdict 'maybe' is not one of 'holds'"),
    ([{"name": "a", "statement": "s"}], "record_results claims[0] has no 'verdict'"),
    ([{"name": "a", "statement": "s", "verdict": "holds", "evidence": 3}], "'evidence' must be a string"),
    ([{"name": "a", "statement": "s", "verdict": "holds", "reason": 1}], "'reason' must be a string or None"),
    ([{"name": "a", "statement": "s", "verdict": "holds"}] * 2, "claim names must be unique, repeated: a"),
    (["holds"], "record_results claims[0] must be a dict or have a to_dict() method, got str"),
    ({"name": "a"}, "record_results claims must be a list of claims, got dict"),
])
def test_record_results_refuses_bad_claims(tmp_path, monkeypatch, claims, message):
    from cifarkit.course.results import record_results

    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path))
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        record_results("01_demo", {"acc": 1.0}, claims=claims)
    assert list(tmp_path.iterdir()) == []


def test_malformed_claims_in_a_metrics_file_are_reported_not_fatal(tmp_path):
    (tmp_path / "01_x.metrics.json").write_text(json.dumps({"acc": 1, "claims": [
        CLAIMS[0], {"name": "b", "statement": "s", "verdict": "probably"}, 7]}))
    (tmp_path / "02_y.metrics.json").write_text(json.dumps({"acc": 1, "claims": "all good"}))
    summary, md = _report_for(["01_x.ipynb", "02_y.ipynb"], tmp_path)
    first, second = summary["notebooks"]
    assert [c["name"] for c in first["claims"]] == ["logits"]
    assert first["claims_note"].startswith("2 claim(s) ignored: claims[1]: verdict 'probably'")
    assert second["claims"] == [] and "'claims' must be a list, got str" in second["claims_note"]
    assert "_2 claim(s) ignored: claims[1]" in md and "| 01_x.ipynb | 1 | 0 | 0 | 0 |" in md


def test_record_results_takes_a_claims_table(tmp_path, monkeypatch):
    """What notebook 01 does: ``record_results(..., claims=claims)`` with a `ck.Claims`."""
    from cifarkit.course.claims import Claims, Estimate, RunCase
    from cifarkit.course.results import record_results

    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path))
    claims = Claims(RunCase(data="synthetic"))
    claims.greater("a_beats_b", "A beats B", Estimate.accuracy([0.6, 0.62], n=1000, label="A"),
                   Estimate.accuracy([0.3, 0.31], n=1000, label="B"))
    claims.not_testable("on_cifar", "Also on CIFAR-10", reason="synthetic data",
                        elsewhere="A beats B there too (source: none recorded)")
    stored = json.loads(record_results("01_t", {"acc": 0.6}, claims=claims).read_text())["claims"]
    assert [(c["name"], c["verdict"]) for c in stored] == [("a_beats_b", "holds"),
                                                           ("on_cifar", "not testable here")]
    assert stored[0]["case"] == "SYNTHETIC data, random init, quick profile"
    _, md = _report_for(["01_t.ipynb"], tmp_path)
    assert "| A beats B | **holds** |" in md and "**not testable here**: synthetic data" in md


#: A course-like notebook (setup of notebook 06, so its quick profile has 16 epochs) whose one claim,
#: "epochs - seed is 16 or more", shows with the profile's settings and seed 0 only.
LESSON_CELLS = (
    "import torch\nimport cifarkit as ck\n"
    "cfg = ck.setup('06_gated_cnn', profile, epochs=epochs, seed=seed, data=data_source)\n"
    "data = ck.synthetic_cifar(n_train=20, n_test=10, seed=cfg.seed)",
    "claims = ck.Claims(ck.run_case(cfg, data))\n"
    "claims.above('long_enough', 'Epochs minus seed is 16 or more', ck.Estimate.exact(cfg.epochs - cfg.seed), 15.5)\n"
    "claims.show()",
    "ck.record_results({'epochs': cfg.epochs}, cfg=cfg, data=data, claims=claims)",
)
LESSON_PARAMETERS = 'profile = "quick"\ndata_source = "synthetic"\nepochs = None\nseed = 0'


def test_a_changed_parameter_gives_a_finding_and_a_broken_invariant_still_fails(tmp_path, capsys):
    """``cifarkit run -p epochs=2``: the lesson that does not show is reported ("differs"), the
    notebook runs to its end; a broken invariant (softmax outputs that do not sum to 1) fails in
    every case; with the profile's own settings a lesson that does not show fails (CI stays strict)."""
    write_notebook(tmp_path / "nbs" / "01_lesson.ipynb", LESSON_PARAMETERS, *LESSON_CELLS,
                   "assert torch.allclose(torch.softmax(torch.ones(2, 10), 1).sum(1), torch.ones(2))\n"
                   "claims.check()\nprint('all invariants hold')")
    write_notebook(tmp_path / "nbs" / "02_broken.ipynb", LESSON_PARAMETERS, *LESSON_CELLS,
                   "probs = 1.1 * torch.softmax(torch.ones(2, 10), 1)  # a broken softmax\n"
                   "assert torch.allclose(probs.sum(1), torch.ones(2)), 'the softmax outputs must sum to 1'\n"
                   "claims.check()")
    result = run_notebooks(tmp_path / "nbs", out=tmp_path / "edited", parameters={"epochs": 2}, progress=True)
    lesson, broken = result.notebooks
    assert (lesson.status, broken.status) == ("differs", "failed") and lesson.ok and not result.ok
    assert broken.error.startswith("AssertionError: the softmax outputs must sum to 1")
    assert lesson.metrics["course_case"] == {
        "case": "SYNTHETIC data, random init, quick profile, epochs=2 (changed)", "sized": False,
        "changes": ["epochs=2 (the quick profile has 16)"], "differs": ["long_enough"]}
    out = capsys.readouterr().out
    assert re.search(r"01_lesson.ipynb\s+differs .*claims that differ from the course: long_enough", out)
    executed = nbformat.read(str(lesson.output), as_version=4)
    banner = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert "1 of 1 claim(s) came out differently" in banner and "all invariants hold" in banner
    summary = json.loads(result.summary_json.read_text())
    assert summary["failed"] == ["02_broken.ipynb"] and summary["differs"] == ["01_lesson.ipynb"]
    md = result.summary_md.read_text()
    assert "| 01_lesson.ipynb | ok, differs from the course |" in md and "| 02_broken.ipynb | **FAILED** |" in md
    assert "**Ran to the end; differs from the course**: under this run's settings (epochs=2 (the quick " \
           "profile has 16)) the claims long_enough came out differently" in md
    # the profile's own settings and a seed of the lessons sweep: the lesson must show (nbval, `make run`)
    strict = run_notebooks(tmp_path / "nbs", out=tmp_path / "seed1", only=["01"], parameters={"seed": 1},
                           progress=False)
    assert strict.notebooks[0].status == "failed"
    assert "1 claim(s) off their expected verdict in this case (SYNTHETIC data" in strict.notebooks[0].error


def test_statuses_ok_differs_failed_in_the_summary_and_the_sweep_tables():
    from cifarkit.course.summary import check_summary, notebook_status, ran, status_label
    from cifarkit.course.sweep import _cell, claims_table

    differs = {"course_case": {"sized": False, "differs": ["lesson"]}}
    assert notebook_status(None, differs) == "differs" and notebook_status(None, {"acc": 1}) == "ok"
    assert notebook_status("AssertionError: broken", differs) == "failed"
    assert notebook_status(None, {"course_case": "junk"}) == "ok"  # a malformed record is no finding
    assert ran("differs") and ran("ok") and not ran("failed") and not ran("interrupted")
    assert status_label("differs") == "ok, differs from the course" and status_label("??") == "**FAILED**"
    # a summary.json written before the status existed, or by hand, gets its lists filled in
    summary = check_summary({"notebooks": [{"name": "a.ipynb", "status": "differs"}, {"name": "b.ipynb", "status": "ok"}]})
    assert summary["ok"] and summary["failed"] == [] and summary["differs"] == ["a.ipynb"]
    claim = {"name": "lesson", "statement": "It shows", "verdict": "does not hold"}
    table = claims_table({"run 1": {"a.ipynb": {"status": "differs", "claims": [claim]}},
                          "run 2": {"a.ipynb": {"status": "failed", "claims": []}}})
    assert table[2] == "| a.ipynb | It shows | **FAILS** | FAILED |"
    assert table[-1] == "| a.ipynb | (notebook failed in: run 2) | | |"
    assert _cell({"status": "differs", "seconds": 1.0, "claims": [claim]}).startswith("ok, differs from the course 1.0 s")
