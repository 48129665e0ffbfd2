"""Smoke tests of the benchmark scripts' plumbing (their measurements run in `make bench` only)."""
import json
import shlex
import sys

import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import accuracy  # noqa: E402
import memory  # noqa: E402
import run_all  # noqa: E402
import speedrun_eval  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_accuracy_refuses_synthetic_data_without_the_flag(capsys):
    with pytest.raises(SystemExit):
        accuracy.main(["speedrun-v2", "--source", "synthetic"])
    assert "--allow-synthetic" in capsys.readouterr().err


def test_accuracy_writes_a_result_and_merges_it(tmp_path):
    results = tmp_path / "all.json"
    results.write_text(json.dumps({"other-3ep": {"recipe": "other"}}))
    args = ["speedrun-v2", "--epochs", "1", "--source", "synthetic", "--allow-synthetic", "--n-train", "256",
            "--n-test", "64", "--out", str(tmp_path / "my run"), "--results", str(results)]
    entry = accuracy.main(args)
    saved = json.loads((tmp_path / "my run" / "result.json").read_text())
    assert shlex.split(saved["command"])[2:] == args, "the recorded command can be pasted into a shell"
    assert saved == entry and saved["epochs"] == 1 and saved["n_train"] == 256
    assert saved["data"].startswith("SYNTHETIC")
    assert 0.0 <= saved["test_acc"] <= 1.0 and saved["test_acc_tta"] is not None and saved["tta"]
    assert (tmp_path / "my run" / "checkpoint.pt").exists() and (tmp_path / "my run" / "curve.png").exists()
    merged = json.loads(results.read_text())
    assert set(merged) == {"other-3ep", "speedrun-v2-1ep"}
    assert saved["complete"] and saved["planned_epochs"] == 1
    assert saved["exact_first_1000_acc"] is None, "a --n-test subset does not hold the split's first images"
    assert accuracy.percent(None) == "-" and accuracy.percent(0.91071) == "91.07%"
    again = accuracy.main(args)  # resumes from the finished checkpoint: no new training
    assert again["val_acc_per_epoch"] == entry["val_acc_per_epoch"]


def test_a_run_on_another_cpu_gets_its_own_key_and_a_rerun_on_the_same_one_replaces(tmp_path):
    results = tmp_path / "all.json"
    epyc = {"key": "speedrun-8ep", "hardware": "AMD EPYC, 2 threads", "test_acc": 0.90}
    accuracy.merge_results(epyc, results)
    xeon = {"key": "speedrun-8ep", "hardware": "Intel(R) Xeon(R) Processor, 2 threads", "test_acc": 0.89}
    assert accuracy.merge_results(dict(xeon), results) == "speedrun-8ep@intel-xeon-processor"
    again = accuracy.merge_results(dict(xeon, test_acc=0.91), results)       # the same CPU again: replaced
    rerun = accuracy.merge_results(dict(epyc, test_acc=0.92), results)
    table = json.loads(results.read_text())
    assert again == "speedrun-8ep@intel-xeon-processor" and rerun == "speedrun-8ep"
    assert set(table) == {"speedrun-8ep", "speedrun-8ep@intel-xeon-processor"}
    assert table["speedrun-8ep"]["test_acc"] == 0.92 and table[again]["test_acc"] == 0.91 and table[again]["key"] == again
    assert results.read_text().endswith("}\n")


def test_accuracy_stop_after_writes_a_partial_result_then_resumes(tmp_path):
    args = ["speedrun-v2", "--epochs", "2", "--source", "synthetic", "--allow-synthetic", "--n-train", "256",
            "--n-test", "64", "--out", str(tmp_path / "run"), "--results", str(tmp_path / "all.json")]
    partial = accuracy.main(args + ["--stop-after", "1"])
    assert partial["epochs"] == 1 and not partial["complete"] and partial["planned_epochs"] == 2
    finished = accuracy.main(args)
    assert finished["epochs"] == 2 and finished["complete"]
    assert finished["val_acc_per_epoch"][0] == partial["val_acc_per_epoch"][0]
    # another seed is another run: its own key in the results (never a resumed seed-0 checkpoint)
    other = accuracy.main(args[:10] + ["--out", str(tmp_path / "run1"), "--results", str(tmp_path / "all.json"),
                                       "--seed", "1"])
    assert other["key"] == "speedrun-v2-2ep-seed1" and set(json.loads((tmp_path / "all.json").read_text())) >= {
        "speedrun-v2-2ep", "speedrun-v2-2ep-seed1"}


def test_accuracy_set_changes_recipe_fields_and_names_the_run(tmp_path, capsys):
    base = accuracy.get_recipe("speedrun-v2")
    changed = accuracy.changed_recipe(base, ["cutout=8", "pad_mode=zeros", "model_kwargs={'widths': (8, 16)}"])
    assert changed.cutout == 8 and changed.pad_mode == "zeros" and changed.model_kwargs == {"widths": (8, 16)}
    assert changed.name == "speedrun-v2+cutout-8+pad-mode-zeros+model-kwargs-widths-8-16"
    assert changed.lr == base.lr and accuracy.changed_recipe(base, []) is base
    for bad in (["cutout"], ["no_such_field=1"], ["name=x"], ["cutout=-1"]):
        with pytest.raises(ValueError, match="--set"):
            accuracy.changed_recipe(base, bad)
    args = ["speedrun-v2", "--epochs", "1", "--source", "synthetic", "--allow-synthetic", "--n-train", "256",
            "--n-test", "64", "--results", str(tmp_path / "all.json"), "--set", "cutout=4",
            "--out", str(tmp_path / "run")]
    entry = accuracy.main(args)
    assert entry["key"] == "speedrun-v2+cutout-4-1ep" and "cutout 4" in entry["summary"] and "--set cutout=4" in entry["command"]
    assert (entry["base_recipe"], entry["seed"], entry["settings"]) == ("speedrun-v2", 0, ["cutout=4"])
    with pytest.raises(SystemExit):
        accuracy.main(args[:-2] + ["--set", "cutout=x"])
    assert "--set" in capsys.readouterr().err


def test_memory_measures_each_case_in_its_own_process(tmp_path):
    out = memory.main(["--only", "07", "--steps", "2", "--source", "synthetic", "--json", str(tmp_path / "m.json")])
    case = out["cases"]["07"]
    assert json.loads((tmp_path / "m.json").read_text()) == out
    assert case["steps"] == 2 and case["batch_size"] == 500 and case["n_train"] == 5000
    # a fresh process: its peak includes the data and a training step of a 2M-parameter net at batch 1024
    assert case["peak_rss_mib"] > case["rss_after_data_mib"] > 100
    with pytest.raises(SystemExit):
        memory.main(["--only", "99"])
    with pytest.raises(SystemExit):
        memory.main(["--steps", "1"])


def test_memory_cases_train_what_the_notebooks_full_profiles_say(monkeypatch):
    import cifarkit as ck
    full = ck.notebook_profiles("07_speedrun")["full"]
    model, _, loader_kw = memory.CASES["07"][1](None)
    assert model.widths == full["widths"] and loader_kw["batch_size"] == full["batch_size"]
    # a change in a notebook's profile (cifarkit/course/notebooks.py) reaches the benchmark
    monkeypatch.setattr(memory, "full_profile", lambda nb: dict(full, widths=(8, 16, 16), batch_size=64))
    model, optimizer, loader_kw = memory.CASES["07"][1](None)
    assert model.widths == (8, 16, 16) and loader_kw["batch_size"] == 64
    recipe = ck.get_recipe("speedrun").with_batch_size(64)  # the notebook's recipe: Muon first, per-image SGD rates
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([g["lr"] for g in recipe.param_groups(model)])
    assert any(m.residual is False for m in model.stages), "the recipe's model settings survive the new widths"


def test_run_all_keeps_the_sections_it_does_not_measure(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    (tmp_path / "results.md").write_text("# Benchmarks\n\n<!-- section: loop -->\n## 1. old loop\n\nkept text\n"
                                         "<!-- section: suite -->\n## 4-5. old suite\n")
    monkeypatch.setitem(run_all.SECTIONS, "suite", lambda: ["## 4-5. new suite", "", "fresh"])
    monkeypatch.setattr(run_all, "accuracy_section", lambda: ["## Real-data accuracy"])
    run_all.main(["--only", "suite"])
    text = (tmp_path / "results.md").read_text()
    assert "kept text" in text and "fresh" in text and "old suite" not in text
    assert text.index("old loop") < text.index("new suite") < text.index("Real-data accuracy")
    run_all.main(["--only", "accuracy"])  # measures nothing, keeps every section
    assert (tmp_path / "results.md").read_text() == text
    sections = run_all.previous_sections(tmp_path / "results.md")
    assert sections["loop"][0] == "## 1. old loop" and sections["suite"][0] == "## 4-5. new suite"
    assert sections["suite"][2].startswith("_Measured ") and f" on {run_all.machine()}._" in sections["suite"][2]


def _jpeg_archive(path, images, start=0, quality=75):
    """A tar like the shared folder's: test/NNNNN.jpg for each image (3 x H x W uint8)."""
    import io
    import tarfile

    from PIL import Image
    with tarfile.open(path, "w:gz") as tar:
        for i, img in enumerate(images, start):
            buf = io.BytesIO()
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality)
            info = tarfile.TarInfo(f"test/{i:05d}.jpg")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)


def test_jpeg_twins_are_the_decoded_copies_of_the_exact_images(tmp_path):
    import torch
    g = torch.Generator().manual_seed(0)
    # smooth images (JPEG keeps them close) plus a little noise
    base = torch.rand(6, 3, 4, 4, generator=g).repeat_interleave(8, 2).repeat_interleave(8, 3)
    exact = (base * 200 + 20 + torch.rand(6, 3, 32, 32, generator=g) * 8).to(torch.uint8)
    _jpeg_archive(tmp_path / "copy.tar.gz", exact)
    twins = accuracy.jpeg_twins(tmp_path / "copy.tar.gz", exact)
    assert twins.shape == exact.shape and twins.dtype == torch.uint8
    mae = (twins.float() - exact.float()).abs().mean()
    assert 0 < mae < accuracy.TWIN_MAX_MAE  # lossy, but a copy
    assert accuracy.jpeg_twins(tmp_path / "copy.tar.gz", exact[:4]).equal(twins[:4])  # only the first N read

    with pytest.raises(ValueError, match="not copies"):
        accuracy.jpeg_twins(tmp_path / "copy.tar.gz", exact.flip(0))  # same files, other images
    _jpeg_archive(tmp_path / "short.tar.gz", exact[:3])
    with pytest.raises(ValueError, match="lacks JPEG copies of 3"):
        accuracy.jpeg_twins(tmp_path / "short.tar.gz", exact)


def test_lessons_tables_claim_by_run_and_counts_verdicts(tmp_path):
    import json as _json

    import lessons

    def run_dir(name, verdicts, status="ok"):
        d = tmp_path / name
        d.mkdir()
        claims = [{"name": n, "statement": f"claim {n}", "verdict": v} for n, v in verdicts.items()]
        nb = {"name": "01_x.ipynb", "status": status, "duration_s": 12.5, "error": None if status == "ok" else "boom",
              "metrics": {"claims": claims} if status == "ok" else None}
        (d / "summary.json").write_text(_json.dumps({"notebooks": [nb]}))
        return d

    results = {"synthetic seed 0": lessons.collect(run_dir("a", {"a": "holds", "b": "inconclusive"})),
               "CIFAR-10 copy seed 0": lessons.collect(run_dir("b", {"a": "does not hold", "b": "holds"})),
               "CIFAR-10 copy seed 1": lessons.collect(run_dir("c", {}, status="failed"))}
    lines = lessons.table(results)
    assert lines[2] == "| 01_x.ipynb | claim a | holds | **FAILS** | FAILED |"
    assert lines[3] == "| 01_x.ipynb | claim b | *inconclusive* | holds | FAILED |"
    assert "notebook failed in: CIFAR-10 copy seed 1" in lines[4]
    t = lessons.totals(results)
    assert t["verdicts"]["holds"] == 2 and t["verdicts"]["does not hold"] == 1
    assert t["seconds"]["synthetic seed 0"] == 12.5
    text = "\n".join(lessons.render({"profile": "quick", "measured": "now", "command": "python bench/lessons.py",
                                     "runs": results, "skipped": [], **t}))
    assert "holds 2, does not hold 1, inconclusive 1" in text


def test_lessons_merges_a_partial_sweep_into_the_recorded_runs(tmp_path):
    import json as _json

    import lessons
    path = tmp_path / "lessons_quick.json"
    path.write_text(_json.dumps({"command": "python bench/lessons.py --only 05",
                                 "runs": {"synthetic seed 0": {"05_x.ipynb": {"status": "ok"}}}}))
    runs, commands = lessons.merged(path, {"synthetic seed 0": {"01_y.ipynb": {"status": "ok"}},
                                           "synthetic seed 1": {"01_y.ipynb": {"status": "ok"}}},
                                    "python bench/lessons.py --only 01")
    assert sorted(runs["synthetic seed 0"]) == ["01_y.ipynb", "05_x.ipynb"]
    assert list(runs["synthetic seed 1"]) == ["01_y.ipynb"]
    assert commands == ["python bench/lessons.py --only 05", "python bench/lessons.py --only 01"]


def test_precision_section_tables_each_setting_and_each_choice(monkeypatch):
    speed = {"fp32": 300.0, "bf16": 450.0, "bf16 + channels_last": 600.0, "bf16 + channels_last + compile": 540.0}
    runs = {n: {"images_per_s": v, "first_epoch_s": 10.0, "test_acc": 0.7} for n, v in speed.items()}
    fake = {"runs": runs, "ratios": run_all.precision.choice_ratios(speed), "epochs": 3, "rounds": 2,
            "batch_size": 500, "n_train": 10000, "n_test": 2000, "data": "SYNTHETIC",
            "recipe": "speedrun: speedrun model, batch 500", "command": "python bench/precision.py"}
    monkeypatch.setattr(run_all.precision, "main", lambda argv: fake)
    text = "\n".join(run_all.precision_section())
    assert "speedrun: speedrun model, batch 500" in text and "| bf16 + channels_last + compile | 540 |" in text
    assert "| bf16 autocast (contiguous tensors) | **1.50x** |" in text
    assert "| channels_last (under bf16) | **1.33x** |" in text
    assert "| torch.compile (on the kit's choice) | **0.90x** |" in text
    assert "| the kit's choice against fp32 | **2.00x** |" in text


def test_choice_ratios_skip_choices_whose_settings_were_not_measured():
    ratios = run_all.precision.choice_ratios({"fp32": 100.0, "bf16": 250.0})
    assert ratios == {"bf16 autocast (contiguous tensors)": 2.5}


def test_precision_measures_each_setting_as_asked(monkeypatch):
    seen = []

    def fake_train(recipe, data, **kw):
        seen.append((kw["precision"], kw["channels_last"], recipe.compile, recipe.image_sizes))
        rate = {"32": 100.0, "bf16-mixed": 300.0}[kw["precision"]] * (1 + 0.1 * len(seen))
        history = {"images_per_s": [50.0, rate, rate], "seconds": [9.0, 1.0, 1.0]}
        return type("R", (), {"history": history, "test": {"acc": 0.5}, "final_acc": 0.6})()

    monkeypatch.setattr(run_all.precision, "train_recipe", fake_train)
    out = run_all.precision.main(["--train", "64", "--test", "32", "--source", "synthetic", "--rounds", "2",
                                  "--only", "fp32", "bf16 + channels_last + compile"])
    assert seen == [("32", False, False, None), ("bf16-mixed", True, True, None),
                    ("bf16-mixed", True, True, None), ("32", False, False, None)]  # ABBA
    # epochs 2.. of each run (epoch 1's 50 images/s left out), then the median over the rounds
    assert out["runs"]["fp32"]["images_per_s"] == pytest.approx((110.0 + 140.0) / 2)
    assert out["runs"]["bf16 + channels_last + compile"]["images_per_s"] == pytest.approx((360.0 + 390.0) / 2)
    assert out["runs"]["bf16 + channels_last + compile"]["first_epoch_s"] == 9.0
    assert out["ratios"] == {"all three against fp32": out["runs"]["bf16 + channels_last + compile"]["images_per_s"]
                             / out["runs"]["fp32"]["images_per_s"]}
    with pytest.raises(SystemExit):
        run_all.precision.main(["--epochs", "1"])


def _run(seed: int, sets: list[str], tta: float, plain: float, epochs: int = 8, complete: bool = True) -> dict:
    """A bench/accuracy.py entry as it would be recorded for `speedrun --seed seed --set ...` today."""
    recipe = accuracy.changed_recipe(run_all.get_recipe("speedrun"), sets)
    return {"base_recipe": "speedrun", "seed": seed, "settings": sets, "summary": recipe.summary(), "epochs": epochs,
            "planned_epochs": 8, "complete": complete, "test_acc_tta": tta, "test_acc": plain}


def test_tried_changes_pairs_each_change_with_the_recipe_run_of_its_seed():
    table = {
        "base0": _run(0, [], 0.9100, 0.9000),
        "base1": _run(1, [], 0.9050, 0.8950),
        "ls0": _run(0, ["label_smoothing=0.2"], 0.9080, 0.8990),
        "ls1": _run(1, ["label_smoothing=0.2"], 0.9010, 0.8970),
        "no-partner": _run(7, ["lookahead=True"], 0.95, 0.95),
        "paused": _run(0, ["muon_lr=0.09"], 0.95, 0.95, epochs=3, complete=False),
        # another recipe's run of the same change and seed, and an old entry that recorded only its command
        "other-recipe": dict(_run(0, ["label_smoothing=0.2"], 0.99, 0.99), base_recipe="airbench94-muon"),
        "command-only": {"command": "python bench/accuracy.py speedrun --set muon_lr=0.2", "test_acc_tta": 0.99},
    }
    # a run of an older recipe: its recorded summary is not what the change gives today's recipe
    table["stale"] = dict(_run(0, ["cutout=8"], 0.97, 0.97), summary="speedrun+cutout-8: old")
    lines = run_all.tried_changes(table)
    rows = [line for line in lines if line.startswith("| `")]
    assert rows == ["| `label_smoothing=0.2` | 0, 1 | -0.20, -0.40 | **-0.30** | +0.05 | 90.80%, 90.10% |"]
    assert "own 2 runs spread by sd 0.35 points" in "\n".join(lines)  # 91.00% and 90.50%
    assert run_all.tried_changes({"base0": table["base0"]}) == []  # nothing to pair: no section


def test_tried_changes_star_a_pair_trained_on_two_kinds_of_cpu():
    table = {"base0": dict(_run(0, [], 0.9100, 0.9000), hardware="AMD EPYC, 2 threads"),
             "base1": dict(_run(1, [], 0.9050, 0.8950), hardware="AMD EPYC, 2 threads"),
             "ls0": dict(_run(0, ["label_smoothing=0.2"], 0.9080, 0.8990), hardware="Intel Xeon, 2 threads"),
             "ls1": dict(_run(1, ["label_smoothing=0.2"], 0.9010, 0.8970), hardware="AMD EPYC, 2 threads")}
    lines = run_all.tried_changes(table)
    assert [line for line in lines if line.startswith("| `")][0].startswith("| `label_smoothing=0.2` | 0*, 1 | -0.20, -0.40 |")
    note = [line for line in lines if line.startswith("\\*")]
    assert len(note) == 1 and "ran on Intel Xeon, 2 threads" in note[0] and "seed on AMD EPYC, 2 threads" in note[0]
    # a recipe run of seed 0 on the Xeon too: the Xeon's change run pairs with it, unstarred
    table["base0@xeon"] = dict(_run(0, [], 0.9000, 0.8900), hardware="Intel Xeon, 2 threads")
    rows = [line for line in run_all.tried_changes(table) if line.startswith("| `")]
    assert rows[0].startswith("| `label_smoothing=0.2` | 0, 1 | +0.80, -0.40 |"), rows
    del table["base0@xeon"]
    table["ls0"]["hardware"] = "AMD EPYC, 2 threads"                  # the same CPU: no star, no note
    lines = run_all.tried_changes(table)
    assert any(line.startswith("| `label_smoothing=0.2` | 0, 1 |") for line in lines)
    assert not any(line.startswith("\\*") for line in lines)


def test_the_recorded_speedrun_changes_pair_with_recipe_runs():
    """The real record: the changes tried on the previous recipe find its run of their seed, and
    every seed of today's recipe finds the previous recipe's run of that seed on the same CPU."""
    table = json.loads((REPO / "bench" / "accuracy_results.json").read_text())
    rows = [line for line in run_all.tried_changes(table, "speedrun-torch-init") if line.startswith("| `")]
    assert any(row.startswith("| `label_smoothing=0.2` | 0, 1, 2 |") for row in rows), rows
    lines = run_all.recipe_against(table, "speedrun", "speedrun-torch-init")
    row = next(line for line in lines if line.startswith("| `speedrun` - `speedrun-torch-init` |"))
    assert row.split(" | ")[1] == "0, 1, 2, 3, 4", row  # five seeds, none starred: each pair on one CPU


def test_recipe_against_pairs_the_recipe_with_its_predecessor_by_seed_and_cpu():
    def old(seed, tta, plain, hw):
        e = dict(_run(seed, [], tta, plain), hardware=hw, base_recipe="speedrun-torch-init")
        return dict(e, summary=run_all.get_recipe("speedrun-torch-init").summary())

    def new(seed, tta, plain, hw, exact=None):
        return dict(_run(seed, [], tta, plain), hardware=hw, exact_first_1000_acc=exact)

    table = {"old0": old(0, 0.9000, 0.8900, "EPYC"), "old0x": old(0, 0.9050, 0.8950, "Xeon"),
             "old1": old(1, 0.9100, 0.9000, "EPYC"),
             "new0": new(0, 0.9110, 0.9000, "Xeon", 0.93), "new1": new(1, 0.9120, 0.9010, "Xeon", 0.94),
             "lone": new(5, 0.99, 0.99, "Xeon")}                       # no partner: left out of the row
    lines = run_all.recipe_against(table, "speedrun", "speedrun-torch-init")
    row = next(line for line in lines if line.startswith("| `speedrun`"))
    # seed 0 pairs with the Xeon run of the old recipe (same CPU); seed 1 has only an EPYC partner: starred
    assert row == "| `speedrun` - `speedrun-torch-init` | 0, 1* | +0.60, +0.20 | **+0.40** | +0.30 | 91.10%, 91.20% |"
    text = "\n".join(lines)
    # +0.60 and +0.20: sd 0.28, t(1) = 12.706 -> half-width 2.54
    assert "Paired differences with TTA: mean +0.40, sd 0.28 over 2 seeds; 95% interval -2.14 to +2.94 points" in text
    assert "`speedrun` on Xeon, seeds 0, 1, 5: 93.77% ± 4.53 with TTA (mean ± sd); exact 1,000: 93.0%, 94.0%" in text
    assert "`speedrun-torch-init` on EPYC, seeds 0, 1: 90.50% ± 0.71" in text
    assert "\\* The `speedrun` run ran on Xeon, the partner run of that seed on EPYC" in text
    assert run_all.recipe_against({"new0": table["new0"]}, "speedrun", "speedrun-torch-init") == []


def test_speedrun_eval_scores_a_finished_run_as_the_recipe_does_then_its_variants(tmp_path, capsys):
    common = ["--source", "synthetic", "--allow-synthetic", "--n-train", "256", "--n-test", "64"]
    entry = accuracy.main(["speedrun", "--epochs", "1", "--set", "batch_size=64", *common, "--out", str(tmp_path / "run"),
                           "--results", str(tmp_path / "all.json")])
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    report = speedrun_eval.main([str(checkpoint), "--set", "batch_size=64", "--bn-images", "128", *common,
                                 "--out", str(tmp_path / "eval"), "--record", str(tmp_path / "record.json")])
    recorded = json.loads((tmp_path / "record.json").read_text())["evaluation"]
    assert recorded["table"] == report["table"] and recorded["command"].startswith("python bench/speedrun_eval.py ")
    rows = report["results"][str(checkpoint)]
    assert list(rows)[0] == "the recipe's own (flip + shift 1)"
    assert rows["the recipe's own (flip + shift 1)"][0] == entry["test_acc_tta"], "the same model, the same views"
    assert set(speedrun_eval.VIEW_SETS) < set(rows) and "precise BN on 128 training images, the recipe's views" in rows
    table = (tmp_path / "eval" / "eval.md").read_text()
    assert table.count("\n| ") == len(rows) + 1 and "+0.00" in table  # header rule + one row each; own row vs itself
    with pytest.raises(SystemExit):
        speedrun_eval.main([str(tmp_path / "nothing.pt"), *common])
    assert "no checkpoint at" in capsys.readouterr().err


def test_speedrun_eval_views_move_images_as_tta_logits_does():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    assert torch.equal(speedrun_eval.shifted(x, -1, -1), padded[..., :6, :6])  # tta_logits' up-left view
    assert torch.equal(speedrun_eval.shifted(x, 1, 1), padded[..., 2:, 2:])
    assert torch.equal(speedrun_eval.shifted(x, 0, 2)[..., :, :4], x[..., :, 2:])
    assert all(abs(sum(v.values()) - 1) < 1e-12 for v in speedrun_eval.VIEW_SETS.values()), "weights sum to 1"


def test_book_build_inputs(tmp_path):
    import book_build

    copy = book_build.fixture_copy("05_math")
    assert 'record_results(\\"05_math\\"' in copy and '\\"01_math\\"' not in copy
    run = book_build.course_sources_run(tmp_path)
    shape = book_build.describe(run)
    assert shape["notebooks"] == 7 and shape["cells"] > 7 * 10 and shape["figures"] == 0
    from cifarkit.course.summary import read_summary
    assert [nb["executed"] for nb in read_summary(run / "summary.json")["notebooks"]][0] == "01_softmax_vs_logits.ipynb"


def test_cpu_modes_child_environments(monkeypatch):
    """AVX2 mode sets torch's three switches and the kit's; native clears them whatever the caller set."""
    import cpu_modes
    avx2 = cpu_modes.mode_env("avx2", ["/x"])
    assert {k: avx2[k] for k in cpu_modes.TORCH_AVX2_ENV} == cpu_modes.TORCH_AVX2_ENV and avx2["CIFARKIT_CPU"] == "avx2"
    assert avx2["PYTHONPATH"].split(":")[0] == "/x"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    native = cpu_modes.mode_env("native")
    assert not set(cpu_modes.TORCH_AVX2_ENV) & set(native) and "CIFARKIT_CPU" not in native
    with pytest.raises(ValueError, match="unknown mode"):
        cpu_modes.mode_env("avx512")


def test_cpu_modes_baseline_shim_makes_the_bf16_probes_answer_no(tmp_path):
    """The shim that makes an older kit (which ignores torch's variables) train in fp32."""
    import subprocess
    import cpu_modes
    (tmp_path / "sitecustomize.py").write_text(cpu_modes.BASELINE_SHIM)
    out = subprocess.run([sys.executable, "-c", "import torch.cpu as c; print(c._is_avx512_bf16_supported(), "
                          "c._is_amx_tile_supported())"], env=cpu_modes.mode_env("native", [str(tmp_path)]),
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_cpu_modes_section_tables_ratios_and_efficiency():
    import cpu_modes
    kernel = {"capability": "AVX512", "precision": "bf16-mixed", "matmul fp32 GFLOP/s": 200.0,
              "matmul bf16 GFLOP/s": 800.0, "ResNet-18 fp32 train images/s": 100.0}
    avx2 = dict(kernel, capability="AVX2", precision="32", **{"matmul fp32 GFLOP/s": 100.0,
                                                             "matmul bf16 GFLOP/s": 1.0,
                                                             "ResNet-18 fp32 train images/s": 50.0})

    def run(seconds, wall, precision="bf16-mixed"):
        return {"wall_s": wall, "exit": 0, "notebooks": {"01": {"seconds": seconds, "status": "ok",
                                                                "precision": precision}}}
    table = {
        "kernels": {"command": "k", "cpu": "CPU X", "measured": "now", "modes": {"native": kernel, "avx2": avx2}},
        "suite": {"command": "s", "cpu": "CPU X", "measured": "now", "baseline": "abc", "source": "synthetic",
                  "seed": 0, "rounds": 1,
                  "runs": {"baseline native": [run(100, 110)], "current native": [run(80, 90)],
                           "baseline avx2": [run(400, 420, "32")], "current avx2": [run(160, 170, "32")]}},
        "flops": {"command": "f", "cpu": "CPU X", "measured": "now", "source": "synthetic", "seed": 0,
                  "flops": {"01": 4.0e12}},
    }
    text = "\n".join(cpu_modes.render(table))
    assert "| ResNet-18 fp32 train images/s | 100.0 | 50.0 | 0.50x |" in text
    assert "| whole suite (wall) | 110 | 90 | 420 | 170 | **0.82x** | **0.40x** |" in text
    # 4,000 GFLOP at 800 GFLOP/s (bf16 native) is a 5 s floor against 80 s; at 100 GFLOP/s (AVX2) 40 s against 160 s
    assert "| 01 | 4,000 | bf16-mixed | 5.0 | 80 | 6% | 32 | 40.0 | 160 | 25% |" in text
    # an AVX2-only machine times only AVX2 mode (its native mode is the same): one set of columns
    for key in ("baseline native", "current native"):
        del table["suite"]["runs"][key]
    text = "\n".join(cpu_modes.render(table))
    assert "| whole suite (wall) | 420 | 170 | **0.40x** |" in text
    assert "| 01 | 4,000 | 32 | 40.0 | 160 | 25% |" in text


def test_cpu_modes_flop_counter_counts_a_kernels_cells(tmp_path, monkeypatch):
    """The IPython startup file of `flops` writes the running total after every cell."""
    import cpu_modes
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.setenv("CIFARKIT_FLOPS_DIR", str(tmp_path))
    monkeypatch.setenv("CIFARKIT_NOTEBOOK", "99_test")
    shell = InteractiveShell.instance()
    try:
        shell.run_cell(cpu_modes.FLOP_COUNTER)
        shell.run_cell("import torch; torch.ones(8, 16) @ torch.ones(16, 4)")
        assert json.loads((tmp_path / "99_test.json").read_text())["flops"] == 2 * 8 * 16 * 4
    finally:
        shell.run_cell("_cifarkit_flops.__exit__(None, None, None)")
        InteractiveShell.clear_instance()


@pytest.mark.timeout(600)
def test_lessons_runs_its_pairs_through_the_engine_and_reuses_finished_ones(tmp_path, capsys):
    import lessons
    from test_engine import notebook

    nbs = tmp_path / "nbs"
    notebook(nbs, "01_a", sleep=0.1, makes=["m"])
    notebook(nbs, "02_b", sleep=0.1, needs=["m"])
    runs = lessons.pairs("quick", ["synthetic"], [0, 1], tmp_path / "out")
    assert [p.name for p, _ in runs] == ["quick-synthetic-seed0", "quick-synthetic-seed1"]
    lessons.run_pairs("quick", runs, None, workers=2, notebooks_dir=nbs)
    out = capsys.readouterr().out
    assert "quick synthetic seed 1: " in out and "[synthetic seed 1]" in out
    for run_dir, params in runs:
        collected = lessons.collect(run_dir)
        assert set(collected) == {"01_a.ipynb", "02_b.ipynb"} and collected["02_b.ipynb"]["status"] == "ok"
        assert collected["01_a.ipynb"]["worker"]["host"]
    lessons.run_pairs("quick", runs, None, workers=2, notebooks_dir=nbs)
    assert capsys.readouterr().out.count("reusing") == 2


def test_cluster_projection_schedules_chains_and_parallel_work():
    import cluster

    deps = {"03": ["01"], "04": ["01", "03"]}
    one = {"r": {"01": 10.0, "02": 10.0, "03": 5.0, "04": 5.0}}
    assert cluster.project(one, deps, 1) == 30.0                  # all work on one slot
    assert cluster.project(one, deps, 2) == 20.0                  # 01 -> 03 -> 04 beside 02
    assert cluster.project(one, deps, 8) == 20.0                  # the chain is the floor
    two = {"a": dict(one["r"]), "b": dict(one["r"])}
    assert cluster.project(two, deps, 2) == 30.0 and cluster.project(two, deps, 4) == 20.0
    assert cluster.lower_bound(two, deps, 3) == 20.0 and cluster.lower_bound(two, deps, 1) == 60.0
    # the longest chain first: with 01 started first, 3 slots finish at the chain's 20 s
    assert cluster.project({"r": {"01": 10.0, "x": 9.0, "y": 9.0, "03": 5.0, "04": 5.0}}, deps, 2) == 20.0
    assert cluster.scaled(one, {"01": 2.0})["r"]["01"] == 20.0
    record = {"suite": {"1 worker x 2 threads": {"runs": {"s": {"01": 10.0, "02": 8.0}}},
                        "2 workers x 1 thread": {"runs": {"s": {"01": 15.0, "02": 8.0}}}}}
    assert cluster.one_thread_factors(record) == {"01": 1.5, "02": 1.0}
    with pytest.raises(ValueError, match="slots"):
        cluster.project(one, deps, 0)


@pytest.mark.timeout(600)
def test_cluster_times_a_batch_both_ways_and_tables_it(tmp_path, capsys):
    import cluster
    from test_engine import notebook

    nbs = tmp_path / "nbs"
    notebook(nbs, "01_a", sleep=0.1)
    notebook(nbs, "02_b", sleep=0.1)
    record = cluster.main(["--notebooks", str(nbs), "--out", str(tmp_path / "out"),
                           "--record", str(tmp_path / "cluster.json")])
    cores = cluster.usable_cores()
    assert list(record["suite"]) == [f"1 worker x {cores} threads", f"{cores} workers x 1 thread"]
    for way in record["suite"].values():
        assert set(way["runs"]["suite-%dw" % way["workers"]]) == {"01_a.ipynb", "02_b.ipynb"} and not way["failed"]
    assert json.loads((tmp_path / "cluster.json").read_text()) == record
    text = capsys.readouterr().out
    assert f"| quick suite (minutes) | " in text and "| 01_a.ipynb | " in text
    assert "### The lessons sweep on k such machines, projected" in text and "| 12 | " in text


def test_lessons_runs_again_a_pair_that_ctrl_c_cut_short(tmp_path):
    import lessons

    done, cut, empty = (tmp_path / name for name in ("done", "cut", "empty"))
    for folder, error in ((done, None), (cut, "KeyboardInterrupt: run interrupted by the user")):
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"notebooks": [{"name": "01_x.ipynb", "error": error}]}))
    empty.mkdir()
    assert [lessons.finished(f) for f in (done, cut, empty)] == [True, False, False]


def test_readme_cost_table_is_the_recorded_suite(tmp_path):
    """README's times per CPU are rendered from bench/cpu_modes.json, so they cannot drift from it;
    the renderer itself puts each recorded CPU and mode on a row of its own."""
    import cpu_modes
    table = json.loads(cpu_modes.RESULTS.read_text())
    readme = cpu_modes.README.read_text()
    block = readme.split(cpu_modes.COST_START, 1)[1].split(cpu_modes.COST_END, 1)[0]
    assert block.strip() == "\n".join(cpu_modes.cost_table(table)).strip(), "run: python bench/cpu_modes.py readme"
    assert len(block.strip().splitlines()) >= 3, "README names no measured CPU"
    run = lambda wall: {"wall_s": wall, "exit": 0, "notebooks": {}}  # noqa: E731
    fake = {"suite_by_cpu": {"CPU A": {"baseline": "abc", "measured": "2026-01-01 00:00",
                                       "runs": {"baseline avx2": [run(1200)], "current avx2": [run(600)]}}}}
    copy = tmp_path / "README.md"
    copy.write_text(f"x\n{cpu_modes.COST_START}\nold\n{cpu_modes.COST_END}\ny\n")
    cpu_modes.write_readme_costs(fake, copy)
    assert "| CPU A | AVX2 mode | **10.0** | 20.0 (abc) | 2026-01-01 |" in copy.read_text()
    assert "old" not in copy.read_text() and copy.read_text().endswith("y\n")


def test_kernel_env_runs_each_case_in_a_process_that_sees_its_variable(tmp_path):
    import kernel_env

    record = kernel_env.main(["--images", "64", "--batch", "32", "--rounds", "1", "--json", str(tmp_path / "k.json")])
    assert json.loads((tmp_path / "k.json").read_text()) == record
    assert [[r["seen"] for r in rows] for rows in record["runs"].values()] == [["65536"], [None]]
    for m in record["medians"].values():
        assert m["user_s"] > 0 and m["minor_faults"] > 0 and m["wall_s"] > 0
    assert record["cpu_ratio"] > 0
    text = "\n".join(kernel_env.render(record))
    assert "| MALLOC_TRIM_THRESHOLD_=65536 (a Dask worker's) |" in text and f"{record['cpu_ratio']:.2f}x" in text
    assert "Not measured yet" in "\n".join(kernel_env.render(None))
    with pytest.raises(SystemExit):
        kernel_env.main(["--images", "8", "--batch", "32"])
