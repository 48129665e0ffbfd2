import subprocess
import sys

import pytest

from cifarkit import cli, data

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
