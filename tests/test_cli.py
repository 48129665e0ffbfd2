import subprocess
import sys

import pytest

from cifarkit import data
from cifarkit.course import cli

from test_data import mini_release  # noqa: F401  (fixture)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cifarkit", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("data", "run", "slides"):
        assert word in out.stdout


@pytest.mark.parametrize("args", [["--bogus"], ["data", "frobnicate"], ["run", "--profile", "huge"]])
def test_bad_usage_is_one_line_and_exit_2(args):
    out = run_cli(*args)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "error" in out.stderr


def test_prepare_from_a_missing_directory_is_one_line_and_exit_1(tmp_path):
    out = run_cli("data", "prepare", "--from", str(tmp_path / "nope"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"cifarkit: error: --from {tmp_path / 'nope'}: no such directory"]


def test_info_then_prepare_then_info(mini_release, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "root"
    assert cli.main(["data", "info", "--root", str(root)]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert cli.main(["data", "prepare", "--from", str(mini_release), "--no-verify", "--root", str(root)]) == 0
    assert "NOT verified" in capsys.readouterr().out
    assert cli.main(["data", "info", "--root", str(root)]) == 0
    assert "checksums not verified" in capsys.readouterr().out
    assert data.load_cifar10(root, train=False, verify=False)[0].shape[0] == 50


def test_prepare_with_verification_refuses_a_modified_copy(mini_release, tmp_path, capsys):  # noqa: F811
    assert cli.main(["data", "prepare", "--from", str(mini_release), "--root", str(tmp_path / "r")]) == 1
    assert "md5" in capsys.readouterr().err


def test_run_output_off_a_terminal_is_one_clean_line_per_notebook(tmp_path):
    """What `make run | tee log` shows: no kernel TCP warning, no \\r progress bar, one line each."""
    from test_runner import write_notebook

    for stem in ("01_a", "02_b"):
        write_notebook(tmp_path / "nbs" / f"{stem}.ipynb", 'profile = "quick"\nseed = 0\n', "print(seed)")
    out = run_cli("run", "--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "run"), "-p", "seed=3")
    assert out.returncode == 0, out.stderr
    assert "without encryption" not in out.stderr and "\r" not in out.stderr and "\r" not in out.stdout
    lines = out.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines[:2]] == [["01_a.ipynb", "ok"], ["02_b.ipynb", "ok"]]
    assert all(ln.rstrip().endswith(" s") for ln in lines[:2])
    assert lines[2].startswith("2/2 notebooks ok in ") and len(lines) == 3
    executed = (tmp_path / "run" / "01_a.ipynb").read_text()
    assert "seed = 3" in executed


def test_run_with_a_bad_parameter_value_is_one_line_and_starts_no_kernel(tmp_path):
    out = run_cli("run", "--only", "03", "--out", str(tmp_path / "run"), "-p", "epochs=abc")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "cifarkit: error: parameter 'epochs' expects int >= 1 or None, got 'abc'"]
    assert not (tmp_path / "run").exists()


def test_run_help_lists_the_parameter_schema():
    out = run_cli("run", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "data_source: one of 'auto', 'cifar10', 'cifar10-unverified', 'synthetic'" in text
    assert "epochs: int >= 1 or None" in text


def test_slides_of_a_wrong_shape_summary_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"notebooks": {"01": 1}}')
    out = run_cli("slides", str(run), "--out", str(tmp_path / "slides"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"cifarkit: error: {run / 'summary.json'}: 'notebooks' must be a list, got an object"]
    assert not (tmp_path / "slides").exists()
