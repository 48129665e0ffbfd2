"""Smoke tests of the benchmark scripts' plumbing (their measurements run in `make bench` only)."""
import json
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import accuracy  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_accuracy_refuses_synthetic_data_without_the_flag(capsys):
    with pytest.raises(SystemExit):
        accuracy.main(["speedrun", "--source", "synthetic"])
    assert "--allow-synthetic" in capsys.readouterr().err


def test_accuracy_writes_a_result_and_merges_it(tmp_path):
    results = tmp_path / "all.json"
    results.write_text(json.dumps({"other-3ep": {"recipe": "other"}}))
    args = ["speedrun", "--epochs", "1", "--source", "synthetic", "--allow-synthetic", "--n-train", "256",
            "--n-test", "64", "--out", str(tmp_path / "run"), "--results", str(results)]
    entry = accuracy.main(args)
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved == entry and saved["epochs"] == 1 and saved["n_train"] == 256
    assert saved["data"].startswith("SYNTHETIC")
    assert 0.0 <= saved["test_acc"] <= 1.0 and saved["test_acc_tta_flip"] is not None
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (tmp_path / "run" / "curve.png").exists()
    merged = json.loads(results.read_text())
    assert set(merged) == {"other-3ep", "speedrun-1ep"}
    assert saved["complete"] and saved["planned_epochs"] == 1
    again = accuracy.main(args)  # resumes from the finished checkpoint: no new training
    assert again["val_acc_per_epoch"] == entry["val_acc_per_epoch"]


def test_accuracy_stop_after_writes_a_partial_result_then_resumes(tmp_path):
    args = ["speedrun", "--epochs", "2", "--source", "synthetic", "--allow-synthetic", "--n-train", "256",
            "--n-test", "64", "--out", str(tmp_path / "run"), "--results", str(tmp_path / "all.json")]
    partial = accuracy.main(args + ["--stop-after", "1"])
    assert partial["epochs"] == 1 and not partial["complete"] and partial["planned_epochs"] == 2
    finished = accuracy.main(args)
    assert finished["epochs"] == 2 and finished["complete"]
    assert finished["val_acc_per_epoch"][0] == partial["val_acc_per_epoch"][0]
