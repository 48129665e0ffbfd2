"""The recorded runs notebook 07 quotes ship inside the package (`cifarkit.course.records`), are
written by bench/accuracy.py, and load from an installed wheel, outside any checkout."""
import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from cifarkit.course import records

from conftest import REPO


def test_the_shipped_speedruns_are_what_bench_recorded():
    recorded = json.loads((REPO / "bench" / "accuracy_results.json").read_text())
    shipped = records.speedrun_records()
    assert shipped == records.select_speedruns(recorded), \
        "cifarkit/course/records/speedruns.json is stale: bench/accuracy.py writes it (write_speedrun_records)"
    assert len(shipped) >= 10 and all(e["test_acc_tta"] > 0.5 and e["epochs"] >= 1 for e in shipped)


def test_only_complete_full_data_speedruns_are_selected(tmp_path):
    run = dict(recipe="speedrun", complete=True, n_train=50000, n_test=10000, key="a", epochs=8,
               train_minutes=6.0, test_acc_tta=0.91, command="python bench/accuracy.py speedrun")
    results = {"a": run, "b": dict(run, key="b", complete=False), "c": dict(run, key="c", n_train=5000),
               "d": dict(run, key="d", recipe="gated-cnn"), "e": dict(run, key="e", recipe="airbench94-muon")}
    chosen = records.select_speedruns(results)
    assert [e["key"] for e in chosen] == ["a", "e"] and "command" not in chosen[0]
    path = records.write_speedrun_records(results, tmp_path)
    assert json.loads(path.read_text()) == chosen


@pytest.mark.slow
def test_notebook_07_reads_its_records_from_an_installed_wheel(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO / "cifarkit", source / "cifarkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("cifarkit-*.whl")
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    assert (installed / "cifarkit" / "course" / "records" / "speedruns.json").is_file(), "the wheel lacks the records"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import cifarkit as ck, pathlib; "
            "assert pathlib.Path(ck.__file__).is_relative_to(pathlib.Path.cwd().parent / 'site'), ck.__file__; "
            "print(len(ck.course.records.speedrun_records()))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                            env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert int(loaded.stdout.split()[-1]) == len(records.speedrun_records())
