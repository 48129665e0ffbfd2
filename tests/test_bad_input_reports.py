"""Bad input to the entry points (`cifarkit run`, `run_notebooks`, `cifarkit slides`, the report
readers, `record_results`) gets one clear line naming the argument or the file, never a traceback,
and nothing is written or lost.

No case starts a kernel: every check happens before one would (a few cases run the real
`python -m cifarkit` in a subprocess to see exactly what a user sees).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from cifarkit.course import cli
from cifarkit.course.params import ParameterError
from cifarkit.course.runner import _read_metrics, run_notebooks
from cifarkit.course.summary import NotebookResult, render_summary_markdown, summary_dict

from test_runner import FIXTURE_SCHEMA, FIXTURES, write_notebook

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
       b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND"
       b"\xaeB`\x82")
RANDOM_BYTES = bytes(range(256)) * 4
DEEP_JSON = "[" * 100_000 + "]" * 100_000
PARAMS_CELL = 'profile = "quick"\ndata_source = "auto"\nepochs = None\nseed = 0\nweights = "auto"\n'


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (symlinks as their target text), to compare before and after."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[p.relative_to(folder).as_posix()] = os.readlink(p).encode()
        elif p.is_file():
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
        else:
            out[p.relative_to(folder).as_posix() + "/"] = b""
    return out


def assert_one_line(message: str, *needles: str) -> None:
    assert message.strip() and "\n" not in message.strip(), message
    assert "Traceback" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.fixture
def nbs(tmp_path):
    """A folder with one tiny notebook taking every common course parameter."""
    write_notebook(tmp_path / "nbs" / "01_tiny.ipynb", PARAMS_CELL, "print('ran')")
    return tmp_path / "nbs"


def cli_err(capsys, *args) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


# ---------------------------------------------------------------- `cifarkit run -p NAME=VALUE`

RUN_P_CASES = [
    ("epochs=abc", ["'epochs'", "'abc'", "int >= 1 or None"]),        # wrong type
    ("epochs=0", ["'epochs'", "'0'", "int >= 1"]),                     # out of range
    ("epochs=-3", ["'epochs'", "'-3'"]),
    ("epochs=2.5", ["'epochs'", "'2.5'"]),                             # float for int
    ("epochs=nan", ["'epochs'", "'nan'"]),                             # NaN
    ("epochs=inf", ["'epochs'", "'inf'"]),
    ("epochs=true", ["'epochs'", "'true'"]),                           # bool for int
    ("epochs=[1, 2]", ["'epochs'", "'[1, 2]'"]),
    ("seed=-1", ["'seed'", "int >= 0"]),
    ("seed=False", ["'seed'", "'False'"]),
    ("seed=", ["'seed'", "''"]),
    ("data_source=bogus", ["'data_source'", "'bogus'", "'synthetic'"]),
    ("data_source=None", ["'data_source'", "'None'"]),
    ("data_source=SYNTHETIC", ["'data_source'", "'SYNTHETIC'"]),
    ("weights=bogus", ["'weights'", "'bogus'", "existing file"]),
    ("weights=random", ["'weights'", "'random'", "None"]),
    ("weights=../nope.pt", ["'weights'", "'../nope.pt'"]),
    ("epoch=3", ["unknown parameter 'epoch'", "did you mean 'epochs'"]),
    ("profile=full", ["'profile'", "--profile"]),
    ("epochs", ["malformed parameter 'epochs'", "NAME=VALUE"]),
    ("2x=1", ["'2x' is not a valid Python name"]),
]


@pytest.mark.parametrize("item,needles", RUN_P_CASES, ids=[c[0] for c in RUN_P_CASES])
def test_run_parameter_values(nbs, tmp_path, capsys, item, needles):
    out = tmp_path / "out"
    code, err = cli_err(capsys, "run", "--notebooks", str(nbs), "--out", str(out), "-p", item)
    assert code == 1
    assert err.startswith("cifarkit: error: ")
    assert_one_line(err, *needles)
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_run_parameter_weights_directory_is_not_a_file(nbs, tmp_path, capsys):
    code, err = cli_err(capsys, "run", "--notebooks", str(nbs), "--out", str(tmp_path / "o"),
                        "-p", f"weights={tmp_path}")
    assert code == 1
    assert_one_line(err, "'weights'", "existing file")


SUBPROCESS_CASES = [
    (["run", "-p", "epochs=abc", "--only", "03"], ["'epochs'", "'abc'"]),      # the real notebook 03
    (["run", "-p", "data_source=bogus", "--only", "05"], ["'data_source'", "'bogus'"]),
    (["run", "--only", "99"], ["'99'", "valid choices"]),
    (["slides", "no-such-run"], ["run directory not found", "no-such-run"]),
]


@pytest.mark.parametrize("args,needles", SUBPROCESS_CASES, ids=[" ".join(c[0]) for c in SUBPROCESS_CASES])
def test_real_cli_prints_one_line_and_no_traceback(tmp_path, args, needles):
    proc = subprocess.run([sys.executable, "-m", "cifarkit", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr
    assert_one_line(proc.stderr, *needles)
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing may be written"


# ---------------------------------------------------------------- run_notebooks(...) arguments

def _file(tmp_path):
    (tmp_path / "a-file").write_text("keep me")
    return tmp_path / "a-file"


def _nonempty(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("precious")
    return tmp_path / "taken"


RUN_ARG_CASES = [
    ("parameters nan", lambda t: dict(parameters={"epochs": float("nan")}), ParameterError, ["'epochs'", "nan"]),
    ("parameters bool for int", lambda t: dict(parameters={"epochs": True}), ParameterError, ["'epochs'", "True (bool)"]),
    ("parameters float for int", lambda t: dict(parameters={"seed": 1.5}), ParameterError, ["'seed'", "1.5 (float)"]),
    ("parameters out of range", lambda t: dict(parameters={"epochs": 0}), ParameterError, ["'epochs'", "0 (int)"]),
    ("parameters wrong type", lambda t: dict(parameters={"data_source": 3}), ParameterError, ["'data_source'", "3 (int)"]),
    ("parameters bad string", lambda t: dict(parameters={"epochs": "five"}), ParameterError, ["'epochs'", "'five'"]),
    ("parameters huge list", lambda t: dict(parameters={"epochs": list(range(10_000))}), ParameterError, ["'epochs'", "..."]),
    ("parameters not a dict", lambda t: dict(parameters=["epochs=3"]), TypeError, ["parameters must be a dict"]),
    ("parameters bad name", lambda t: dict(parameters={"../x": 1}), ParameterError, ["'../x'"]),
    ("profile int", lambda t: dict(profile=3), ValueError, ["profile", "3"]),
    ("profile unknown", lambda t: dict(profile="huge"), ParameterError, ["'profile'", "'huge'", "'quick'"]),
    ("profile path", lambda t: dict(profile="../quick"), ParameterError, ["'profile'", "'../quick'"]),
    ("only int", lambda t: dict(only=5), TypeError, ["only must be"]),
    ("only unmatched", lambda t: dict(only=["09"]), ValueError, ["'09'", "valid choices"]),
    ("out is a file", lambda t: dict(out=_file(t)), FileExistsError, ["a-file", "not a directory"]),
    ("out under a file", lambda t: dict(out=_file(t) / "sub"), OSError, ["a-file"]),
    ("out not empty", lambda t: dict(out=_nonempty(t)), FileExistsError, ["taken", "not empty"]),
    ("out int", lambda t: dict(out=7), TypeError, ["out must be"]),
    ("notebooks_dir missing", lambda t: dict(notebooks_dir=t / "nope"), FileNotFoundError, ["nope"]),
    ("notebooks_dir is a file", lambda t: dict(notebooks_dir=_file(t)), NotADirectoryError, ["a-file", "not a directory"]),
    ("notebooks_dir int", lambda t: dict(notebooks_dir=3), TypeError, ["notebooks_dir must be a path"]),
    ("notebooks_dir empty", lambda t: dict(notebooks_dir=t), ValueError, ["no notebooks"]),
    ("kernel_name int", lambda t: dict(kernel_name=3), TypeError, ["kernel_name"]),
    ("kernel_name unknown", lambda t: dict(kernel_name="no-such-kernel"), ValueError, ["no-such-kernel"]),
    ("progress str", lambda t: dict(progress="yes"), TypeError, ["progress"]),
]


@pytest.mark.parametrize("case,make,error,needles", RUN_ARG_CASES, ids=[c[0] for c in RUN_ARG_CASES])
def test_run_notebooks_arguments(nbs, tmp_path, monkeypatch, case, make, error, needles):
    monkeypatch.chdir(tmp_path)
    kwargs = {"notebooks_dir": nbs, "progress": False, **make(tmp_path)}
    before = snapshot(tmp_path)
    with pytest.raises(error) as info:
        run_notebooks(**kwargs)
    assert_one_line(str(info.value), *needles)
    assert snapshot(tmp_path) == before, "nothing may be written or lost"


def test_read_only_run_directory_fails_before_any_kernel(nbs, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(PermissionError) as info:
        run_notebooks(nbs, out=out, progress=False)
    assert_one_line(str(info.value), "cannot write the run directory", "ro", "Permission denied")
    assert list(out.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to a read-only folder")
def test_read_only_run_directory_really_read_only(nbs, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = cli_err(capsys, "run", "--notebooks", str(nbs), "--out", str(out))
    finally:
        out.chmod(0o755)
    assert code == 1
    assert_one_line(err, "cannot write the run directory")


# ---------------------------------------------------------------- metrics files the runner reads

METRICS_CASES = [
    ("missing", None, "no metrics file written"),
    ("empty", b"", "unreadable metrics file: Expecting value"),
    ("truncated", b'{"acc": 0.5, "history": [1, 2', "unreadable metrics file"),
    ("random bytes", RANDOM_BYTES, "unreadable metrics file"),
    ("a list", b"[1, 2, 3]", "does not hold a JSON object"),
    ("a string", b'"acc"', "does not hold a JSON object"),
    ("deeply nested", DEEP_JSON.encode(), "nested too deeply"),
    ("a directory", "dir", "unreadable metrics file"),
]


@pytest.mark.parametrize("case,content,note", METRICS_CASES, ids=[c[0] for c in METRICS_CASES])
def test_unusable_metrics_files_become_a_one_line_note(tmp_path, case, content, note):
    path = tmp_path / "01_x.metrics.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    metrics, got = _read_metrics(path)
    assert metrics is None
    assert_one_line(got, note)
    summary = summary_dict([NotebookResult("01_x.ipynb", Path("01_x.ipynb"), None, "ok", 1.0,
                                            metrics=metrics, metrics_note=got)],
                            tmp_path, "quick", {}, "now", 1.0, None)
    assert f"_No metrics ({got})._" in render_summary_markdown(summary)


CRAFTED_METRICS = [
    ("NaN values", {"acc": float("nan"), "loss": float("inf")}, ["| acc | nan |", "| loss | inf |"]),
    ("run keys of odd types", {"data_source": ["synthetic"], "device": {"cuda": 1}, "acc": 1},
     ["| acc | 1 |"]),
    ("claims not a list", {"claims": {"name": "x"}, "acc": 1}, ["claims ignored: 'claims' must be a list"]),
    ("claim with a bad verdict", {"claims": [{"name": "x", "statement": "s", "verdict": "yes"}]},
     ["1 claim(s) ignored: claims[0]: verdict 'yes' is not one of"]),
    ("claim not an object", {"claims": [["holds"]]}, ["claims[0] must be a dict"]),
    ("claim with a pipe", {"claims": [{"name": "x", "statement": "a | b", "verdict": "holds"}]},
     ["| a \\| b | **holds** |"]),
]


@pytest.mark.parametrize("case,metrics,expected", CRAFTED_METRICS, ids=[c[0] for c in CRAFTED_METRICS])
def test_crafted_metrics_render_without_crashing(tmp_path, case, metrics, expected):
    path = tmp_path / "01_x.metrics.json"
    path.write_text(json.dumps(metrics))
    read, note = _read_metrics(path)
    summary = summary_dict([NotebookResult("01_x.ipynb", Path("01_x.ipynb"), None, "ok", 1.0,
                                            metrics=read, metrics_note=note)],
                            tmp_path, "quick", {}, "now", 1.0, None)
    json.dumps(summary, default=str)
    md = render_summary_markdown(summary)
    for line in expected:
        assert line in md, md


# ---------------------------------------------------------------- summary.json for `cifarkit slides`

@pytest.fixture
def run_dir(tmp_path):
    """A small valid run directory made by hand: one executed notebook, one figure."""
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "01_x-1.png").write_bytes(PNG)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hi")]), str(run / "01_x.ipynb"))
    result = NotebookResult("01_x.ipynb", Path("01_x.ipynb"), run / "01_x.ipynb", "ok", 1.0,
                            metrics={"acc": 0.5}, figures=[run / "figures" / "01_x-1.png"])
    summary = summary_dict([result], run, "quick", {}, "now", 1.0, None)
    (run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "secret.txt").write_text("TOP-SECRET")
    return run


def _set(path_keys, value):
    def change(summary):
        target = summary
        for key in path_keys[:-1]:
            target = target[key]
        target[path_keys[-1]] = value
        return summary
    return change


SUMMARY_CASES = [
    ("missing", "delete", ["has no summary.json"]),
    ("empty", b"", ["summary.json", "empty"]),
    ("whitespace", b"  \n", ["summary.json", "empty"]),
    ("truncated", b'{"notebooks": [{"name": "01', ["summary.json", "not valid JSON"]),
    ("random bytes", RANDOM_BYTES, ["summary.json", "not UTF-8"]),
    ("deeply nested", DEEP_JSON.encode(), ["summary.json", "nested too deeply"]),
    ("a directory", "dir", ["summary.json", "is a directory"]),
    ("a list", b"[]", ["summary.json", "expected a JSON object at the top level, got a list"]),
    ("null", b"null", ["summary.json", "got null"]),
    ("no notebooks", b'{"run_name": "r"}', ["summary.json", "has no 'notebooks' list"]),
    ("notebooks not a list", _set(["notebooks"], {"a": 1}), ["'notebooks' must be a list, got an object"]),
    ("notebook not an object", _set(["notebooks"], ["01_x.ipynb"]), ["notebooks[0] must be an object, got a string"]),
    ("notebook without name", _set(["notebooks", 0, "name"], None), ["notebooks[0]: 'name' must be a string, got null"]),
    ("figure not a string", _set(["notebooks", 0, "figures"], [3]), ["notebooks[0].figures[0] must be a file name"]),
    ("figures not a list", _set(["notebooks", 0, "figures"], "figures/01_x-1.png"), ["'figures' must be a list or null"]),
    ("figure outside the run", _set(["notebooks", 0, "figures"], ["../secret.txt"]), ["'../secret.txt' is outside the run directory"]),
    ("figure absolute", "absolute", ["is outside the run directory"]),
    ("figure symlink out", "symlink", ["is outside the run directory"]),
    ("executed outside the run", _set(["notebooks", 0, "executed"], "../secret.txt"), ["executed notebook of 01_x.ipynb", "outside"]),
    ("executed not a string", _set(["notebooks", 0, "executed"], 5), ["'executed' must be a string or null, got a number"]),
    ("executed random bytes", "bad-notebook", ["01_x.ipynb", "not a readable notebook"]),
    ("duration a string", _set(["notebooks", 0, "duration_s"], "1.0"), ["'duration_s' must be a number"]),
    ("duration a bool", _set(["duration_s"], True), ["'duration_s' must be a number, got true/false"]),
    ("metrics a list", _set(["notebooks", 0, "metrics"], [1]), ["'metrics' must be an object or null"]),
    ("parameters a list", _set(["parameters"], []), ["'parameters' must be an object, got a list"]),
    ("failed not strings", _set(["failed"], [1]), ["failed[0] must be a string"]),
    ("claims bad verdict", _set(["notebooks", 0, "claims"], [{"name": "a", "statement": "s", "verdict": "yes!"}]),
     ["notebooks[0].claims[0]: verdict 'yes!' is not one of"]),
    ("claims not a list", _set(["notebooks", 0, "claims"], "holds"), ["'claims' must be a list, got a string"]),
]


@pytest.mark.parametrize("case,change,needles", SUMMARY_CASES, ids=[c[0] for c in SUMMARY_CASES])
def test_slides_refuse_bad_summaries_in_one_line(run_dir, tmp_path, capsys, case, change, needles):
    path = run_dir / "summary.json"
    if change == "delete":
        path.unlink()
    elif change == "dir":
        path.unlink()
        path.mkdir()
    elif change == "absolute":
        path.write_text(json.dumps(_set(["notebooks", 0, "figures"], [str(tmp_path / "secret.txt")])(
            json.loads(path.read_text()))))
    elif change == "symlink":
        (run_dir / "figures" / "01_x-1.png").unlink()
        (run_dir / "figures" / "01_x-1.png").symlink_to(tmp_path / "secret.txt")
    elif change == "bad-notebook":
        (run_dir / "01_x.ipynb").write_bytes(RANDOM_BYTES)
    elif isinstance(change, bytes):
        path.write_bytes(change)
    else:
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    before = snapshot(tmp_path)
    code, err = cli_err(capsys, "slides", str(run_dir), "--out", str(tmp_path / "slides"))
    assert code == 1
    assert err.startswith("cifarkit: error: ")
    assert_one_line(err, *needles)
    assert "TOP-SECRET" not in err
    assert snapshot(tmp_path) == before and not (tmp_path / "slides").exists()


SLIDES_TARGET_CASES = ["run dir is a file", "run dir missing", "out is a file"]


@pytest.mark.parametrize("case", SLIDES_TARGET_CASES)
def test_slides_bad_folders(run_dir, tmp_path, capsys, case):
    args = ["slides", str(run_dir), "--out", str(tmp_path / "slides")]
    if case == "run dir is a file":
        args[1] = str(run_dir / "summary.json")
        needle = "is a file, not a directory"
    elif case == "run dir missing":
        args[1] = str(tmp_path / "nope")
        needle = "run directory not found"
    else:
        (tmp_path / "slides").mkdir()
        (tmp_path / "slides" / "run").write_text("in the way")
        needle = "exists and is not a directory"
    before = snapshot(tmp_path)
    code, err = cli_err(capsys, *args)
    assert code == 1
    assert_one_line(err, needle)
    assert snapshot(tmp_path) == before


def test_the_hand_made_run_dir_is_valid(run_dir, tmp_path, capsys):
    """The bad-summary cases above change one thing each in a run that works."""
    code, err = cli_err(capsys, "slides", str(run_dir), "--out", str(tmp_path / "slides"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "slides" / "run").iterdir()) == [
        "01_x.slides.html", "overview.slides.html"]


# ---------------------------------------------------------------- record_results names

BAD_NAMES = ["../escape", "a/b", "/tmp/abs", "..", ".hidden", "", "a\\b", "x\n", "sub/../x", 3, None]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_record_results_refuses_names_that_are_not_file_stems(tmp_path, monkeypatch, name):
    from cifarkit.course.results import record_results

    results = tmp_path / "results"
    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(results))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as info:
        record_results(name, {"acc": 1.0})
    assert_one_line(str(info.value), "record_results: name", repr(name), "plain file stem")
    assert snapshot(tmp_path) == before


def test_record_results_refuses_claims_given_twice_and_non_dict_metrics(tmp_path, monkeypatch):
    from cifarkit.course.results import record_results

    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path))
    claim = {"name": "a", "statement": "s", "verdict": "holds"}
    with pytest.raises(ValueError, match="either in metrics\\['claims'\\] or as claims=..., not both"):
        record_results("01_x", {"claims": [claim]}, claims=[claim])
    with pytest.raises(TypeError, match="metrics must be a dict, got list"):
        record_results("01_x", [("acc", 1.0)])
    assert list(tmp_path.iterdir()) == []


def test_fixture_notebooks_need_their_schema_entries(tmp_path, monkeypatch):
    """The fixture notebooks run only with FIXTURE_SCHEMA: the kit's schema names what is missing."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError) as info:
        run_notebooks(FIXTURES, progress=False)
    assert_one_line(str(info.value), "'n_points'", "'lr'", "'max_steps'")
    assert not (tmp_path / "runs").exists()
    assert FIXTURE_SCHEMA["lr"].fits(0.1) and not FIXTURE_SCHEMA["lr"].fits(0)


@pytest.mark.parametrize("override, name", [
    (dict(epochs=0), "epochs"), (dict(epochs="abc"), "epochs"), (dict(epochs=True), "epochs"),
    (dict(data="bogus"), "data_source"), (dict(seed=-1), "seed"), (dict(seed=float("nan")), "seed"),
])
def test_resolve_profile_checks_injected_parameters_against_the_schema(override, name):
    """papermill injects values without the runner's check: the setup cell refuses them itself."""
    import cifarkit as ck
    from cifarkit.course.params import ParameterError
    with pytest.raises(ParameterError) as err:
        ck.resolve_profile("quick", {"quick": dict(epochs=2)}, verbose=False, **override)
    message = str(err.value)
    assert "\n" not in message and repr(name) in message
