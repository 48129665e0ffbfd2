"""The kit on the CPUs students have: native mode against AVX2 mode (``CIFARKIT_CPU=avx2``).

    python bench/cpu_modes.py kernels              # what AVX2 mode changes: kernel rates per mode
    python bench/cpu_modes.py suite                # quick suite: a baseline commit vs this tree, both modes
    python bench/cpu_modes.py flops                # FLOPs each notebook computes (one counting pass)
    python bench/cpu_modes.py speedrun             # speedrun vs the record recipe in fp32, AVX2 mode
    python bench/cpu_modes.py table                # print the results.md section from bench/cpu_modes.json
    python bench/cpu_modes.py readme               # write README.md's cost table from bench/cpu_modes.json

Each command measures in fresh processes, one at a time, and merges what it measured into
``bench/cpu_modes.json`` (with the command, the CPU's model name and the date); `bench/run_all.py`
tables it as section "cpu". Speeds are compared only as ratios of runs made side by side in one
invocation on one machine.

AVX2 mode is the kit's own switch: it sets torch's ``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``
and ``MKL_ENABLE_INSTRUCTIONS`` and makes the kit's bf16 detection answer no. A baseline commit
older than that switch ignores it; ``suite`` therefore runs a baseline with torch's variables set
directly and with a ``sitecustomize`` on its path that makes torch's bf16 and AMX probes answer
no, so that it too trains in fp32 with AVX2 kernels, as it would on an AVX2-only CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "cpu_modes.json"
MODES = ("native", "avx2")
BASELINE = "5b5ce68"  # main before AVX2 mode and the resizing of issue 26
TORCH_AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: a kit that ignores torch's ISA variables asks these two probes whether bf16 is native
BASELINE_SHIM = ("import torch.cpu\n"
                 "torch.cpu._is_avx512_bf16_supported = lambda: False\n"
                 "torch.cpu._is_amx_tile_supported = lambda: False\n")
#: an IPython startup file that counts every FLOP of a kernel's session (`flops`)
FLOP_COUNTER = '''
import json, os
from torch.utils.flop_counter import FlopCounterMode
_cifarkit_flops = FlopCounterMode(display=False)
_cifarkit_flops.__enter__()
def _cifarkit_dump_flops(*_):
    path = os.path.join(os.environ["CIFARKIT_FLOPS_DIR"], os.environ.get("CIFARKIT_NOTEBOOK", "kernel") + ".json")
    with open(path, "w") as f:
        json.dump({"flops": _cifarkit_flops.get_total_flops()}, f)
get_ipython().events.register("post_run_cell", _cifarkit_dump_flops)
'''


def cpu_name() -> str:
    """The CPU as `lscpu` names it, with its family/model and the widest vector and bf16 units it has
    (model names such as "AMD EPYC" cover CPUs several times apart in speed)."""
    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    if "model name" not in info:
        import platform
        return platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    units = [u for u, f in (("AMX-bf16", "amx_bf16"), ("AVX512-BF16", "avx512_bf16"), ("AVX-512", "avx512f"),
                            ("AVX2", "avx2")) if f in flags]
    return f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}; " \
           f"{', '.join(units[:2]) or 'no AVX2'})"


def mode_env(mode: str, pythonpath: list[str] | None = None) -> dict[str, str]:
    """The environment of a child process in `mode` ("native" or "avx2"), with `pythonpath` first."""
    env = {k: v for k, v in os.environ.items() if k not in TORCH_AVX2_ENV and k != "CIFARKIT_CPU"}
    if mode == "avx2":
        env.update(TORCH_AVX2_ENV, CIFARKIT_CPU="avx2")
    elif mode != "native":
        raise ValueError(f"unknown mode {mode!r}: use one of {MODES}")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def merge(key: str, value, command: str) -> None:
    """Keep `value` under `key` in bench/cpu_modes.json, with the command, CPU and date."""
    table = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    table[key] = {"command": command, "cpu": cpu_name(), "measured": time.strftime("%Y-%m-%d %H:%M"), **value}
    if key == "suite":  # README's cost table keeps the newest suite of every CPU it was timed on
        table.setdefault("suite_by_cpu", {})[table[key]["cpu"]] = table[key]
    RESULTS.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"recorded {key} in {RESULTS}", flush=True)


# --------------------------------------------------------------------------------------------
# kernels: what the mode changes
# --------------------------------------------------------------------------------------------

KERNEL_PROBE = r'''
import json, time, torch
import cifarkit as ck
from cifarkit import devices
torch.manual_seed(0)

def rate(fn, flop, seconds=1.5):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(); n += 1
    return flop * n / (time.perf_counter() - start) / 1e9

a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
x = torch.randn(64, 64, 32, 32)
conv = torch.nn.Conv2d(64, 64, 3, padding=1)
conv_flop = 2 * 64 * 64 * 9 * 32 * 32 * 64
out = {"capability": torch.backends.cpu.get_cpu_capability(), "precision": devices.resolve_precision("auto", "cpu")}
with torch.no_grad():
    out["matmul fp32 GFLOP/s"] = rate(lambda: a @ b, 2 * 2048 ** 3)
    ab, bb = a.bfloat16(), b.bfloat16()
    out["matmul bf16 GFLOP/s"] = rate(lambda: ab @ bb, 2 * 2048 ** 3, seconds=0.5)
    out["conv fp32 GFLOP/s"] = rate(lambda: conv(x), conv_flop)
    conv_cl, x_cl = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    out["conv fp32 channels_last GFLOP/s"] = rate(lambda: conv_cl(x_cl), conv_flop)

def train_rate(build, channels_last, batch=128, seconds=6.0):
    """Training steps of a course model (Adam, fp32) on one fixed batch: images per second."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = build().to(memory_format=layout).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    xs, ys = torch.randn(batch, 3, 32, 32).contiguous(memory_format=layout), torch.randint(0, 10, (batch,))
    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xs), ys).backward()
        optimizer.step()
    step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(); n += batch
    return n / (time.perf_counter() - start)

for name, build in (("ResNet-18", ck.ResNetForCifar),
                    ("ResNet-18 with CoveringConv2d", lambda: ck.models.cover_padding_taps(ck.ResNetForCifar())),
                    ("GatedCNN (8-64)", lambda: ck.GatedCNN(widths=(8, 16, 32, 64, 64))),
                    ("SpeedrunNet (32-64)", lambda: ck.SpeedrunNet(widths=(32, 64, 64)))):
    out[f"{name} fp32 train images/s"] = train_rate(build, False)
    out[f"{name} fp32 channels_last train images/s"] = train_rate(build, True)
print("RESULT " + json.dumps(out))
'''


def run_probe(code: str, mode: str, pythonpath=None, timeout: float = 900) -> dict:
    """Run `code` in a fresh Python in `mode`; it prints one line ``RESULT <json>``."""
    proc = subprocess.run([sys.executable, "-c", code], env=mode_env(mode, pythonpath), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"probe in {mode} mode failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")


def kernels(args) -> dict:
    rows = {mode: run_probe(KERNEL_PROBE, mode, [str(REPO)]) for mode in MODES}
    for mode, r in rows.items():
        print(mode, json.dumps(r), flush=True)
    return {"modes": rows}


# --------------------------------------------------------------------------------------------
# suite: the quick suite, a baseline commit against this tree
# --------------------------------------------------------------------------------------------

def baseline_tree(commit: str, where: Path) -> Path:
    """A checkout of `commit` in `where` (a detached git worktree), made once and reused."""
    if not (where / "cifarkit").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(where), commit],
                       check=True, capture_output=True)
    return where


def run_suite(tree: Path, mode: str, out: Path, source: str, seed: int, shim: Path | None) -> dict:
    """`cifarkit run --profile quick` of the notebooks in `tree`, in `mode`: seconds per notebook,
    wall seconds, statuses and the precision each notebook resolved."""
    path = [str(tree)] + ([str(shim)] if shim is not None else [])
    cmd = [sys.executable, "-m", "cifarkit", "run", "--profile", "quick", "--out", str(out),
           "-p", f"data_source={source}", "-p", f"seed={seed}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=mode_env(mode, path), cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    notebooks = {nb["name"][:2]: {"seconds": nb["duration_s"], "status": nb["status"]}
                 for nb in summary.get("notebooks", [])}
    for stem in notebooks:
        metrics = next(out.glob(f"{stem}_*.metrics.json"), None)
        if metrics is not None:
            meta = json.loads(metrics.read_text())
            notebooks[stem]["precision"] = meta.get("precision")
    print(f"{tree.name} {mode}: {wall:.0f} s, exit {proc.returncode}: "
          + ", ".join(f"{k} {v['seconds']:.0f}s {v['status']}" for k, v in notebooks.items()), flush=True)
    return {"wall_s": wall, "exit": proc.returncode, "notebooks": notebooks}


def suite(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="cifarkit-cpu-modes-"))
    work.mkdir(parents=True, exist_ok=True)
    base = baseline_tree(args.baseline, Path(args.baseline_dir) if args.baseline_dir else work / "baseline")
    shim = work / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BASELINE_SHIM)
    variants = {"baseline": (base, shim), "current": (REPO, None)}
    runs = {f"{v} {m}": [] for m in args.modes for v in variants}
    for r in range(args.rounds):  # ABBA within a round, the order reversed every other round
        order = [(v, m) for m in args.modes for v in (variants if r % 2 == 0 else reversed(list(variants)))]
        for variant, mode in order:
            tree, shim_dir = variants[variant]
            out = work / f"round{r}-{variant}-{mode}"
            runs[f"{variant} {mode}"].append(run_suite(tree, mode, out, args.source, args.seed, shim_dir))
    return {"baseline": args.baseline, "source": args.source, "seed": args.seed, "rounds": args.rounds,
            "runs": runs}


# --------------------------------------------------------------------------------------------
# flops: what each notebook computes, counted
# --------------------------------------------------------------------------------------------

def flops(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="cifarkit-flops-"))
    ipython = work / "ipython"
    (ipython / "profile_default" / "startup").mkdir(parents=True, exist_ok=True)
    (ipython / "profile_default" / "startup" / "00-count-flops.py").write_text(FLOP_COUNTER)
    counts = work / "counts"
    counts.mkdir(exist_ok=True)
    env = mode_env("native", [str(REPO)])
    env.update(IPYTHONDIR=str(ipython), CIFARKIT_FLOPS_DIR=str(counts))
    cmd = [sys.executable, "-m", "cifarkit", "run", "--profile", "quick", "--out", str(work / "run"),
           "-p", f"data_source={args.source}", "-p", f"seed={args.seed}"]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    found = {p.stem[:2]: json.loads(p.read_text())["flops"] for p in sorted(counts.glob("*.json"))}
    if not found:
        raise RuntimeError(f"no FLOP counts were written (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    print(json.dumps(found), flush=True)
    return {"source": args.source, "seed": args.seed, "flops": found}


# --------------------------------------------------------------------------------------------
# speedrun: images/s of the kit's recipe against the record recipe, both fp32, AVX2 mode
# --------------------------------------------------------------------------------------------

SPEEDRUN_PROBE = r'''
import json, sys, time, torch
import cifarkit as ck
from cifarkit.recipes import get_recipe, train_recipe
n_train, epochs, rounds = {n_train}, {epochs}, {rounds}
data = ck.load_data({source!r}, n_train, 1000, seed=0)
rates = {{}}
for r in range(rounds):
    for name in (("speedrun", "airbench94-muon") if r % 2 == 0 else ("airbench94-muon", "speedrun")):
        recipe = get_recipe(name, epochs=epochs)
        res = train_recipe(recipe, data, precision="32", seed=0, progress=False, log=False)
        h = res.history
        rates.setdefault(name, []).append({{"images_per_s": list(h["images_per_s"]), "seconds": list(h["seconds"]),
                                            "batch_size": recipe.batch_size,
                                            "image_sizes": list(recipe.image_sizes or [])}})
print("RESULT " + json.dumps(rates))
'''


def speedrun(args) -> dict:
    code = SPEEDRUN_PROBE.format(n_train=args.n_train, epochs=args.epochs, rounds=args.rounds, source=args.source)
    rates = run_probe(code, "avx2", [str(REPO)], timeout=6 * 3600)
    return {"mode": "avx2", "n_train": args.n_train, "epochs": args.epochs, "source": args.source, "runs": rates}


COMMANDS = {"kernels": kernels, "suite": suite, "flops": flops, "speedrun": speedrun}


def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=[*COMMANDS, "table", "readme"])
    p.add_argument("--baseline", default=BASELINE, help="suite: the commit to compare with (default %(default)s)")
    p.add_argument("--baseline-dir", help="suite: an existing checkout of the baseline commit")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="suite: the modes to time")
    p.add_argument("--rounds", type=int, default=1, help="suite, speedrun: alternating rounds")
    p.add_argument("--source", default="synthetic", help="data source of the runs (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=10000, help="speedrun: training images")
    p.add_argument("--epochs", type=int, default=3, help="speedrun: epochs per run")
    p.add_argument("--work", help="folder for the runs (default: a new temporary folder)")
    p.add_argument("--no-record", action="store_true", help="print, do not merge into bench/cpu_modes.json")
    args = p.parse_args(argv)
    if args.command == "table":
        print("\n".join(render(json.loads(RESULTS.read_text()))))
        return None
    if args.command == "readme":
        write_readme_costs(json.loads(RESULTS.read_text()))
        return None
    value = COMMANDS[args.command](args)
    if not args.no_record:
        merge(args.command, value, shlex.join(["python", "bench/cpu_modes.py", *(argv or sys.argv[1:])]))
    return value


# --------------------------------------------------------------------------------------------
# the results.md section
# --------------------------------------------------------------------------------------------

def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def suite_seconds(record: dict, variant: str, mode: str) -> dict[str, float]:
    """Mean seconds per notebook (and "total": mean wall seconds) of one variant and mode."""
    runs = record["runs"].get(f"{variant} {mode}", [])
    stems = sorted({s for r in runs for s in r["notebooks"]})
    out = {s: _mean([r["notebooks"][s]["seconds"] for r in runs if s in r["notebooks"]]) for s in stems}
    out["total"] = _mean([r["wall_s"] for r in runs])
    return out


def peak(kernel_row: dict, precision: str) -> float:
    """The measured peak GFLOP/s a notebook of `precision` could use in that mode."""
    fp32 = kernel_row["matmul fp32 GFLOP/s"]
    return max(fp32, kernel_row["matmul bf16 GFLOP/s"]) if precision == "bf16-mixed" else fp32


def render(table: dict) -> list[str]:
    lines = ["## 8. The CPUs students have: native mode and AVX2 mode (bench/cpu_modes.py)", "",
             "AVX2 mode (`CIFARKIT_CPU=avx2`) makes any CPU behave as an AVX2-only one: torch's kernels stop at "
             "AVX2 and the kit trains in float32, as on most laptops, free notebook CPU runtimes and CI runners. "
             "All rows of a table were measured side by side in one invocation on one machine.", ""]
    k = table.get("kernels")
    if k:
        names = [n for n in k["modes"]["native"] if n not in ("capability", "precision")]
        lines += [f"### What the mode changes (`{k['command']}`; {k['cpu']}, {k['measured']})", "",
                  "| rate | native | AVX2 mode | AVX2 / native |", "| --- | ---: | ---: | ---: |",
                  f"| torch's CPU capability | {k['modes']['native']['capability']} | {k['modes']['avx2']['capability']} | |",
                  f"| precision the kit picks | {k['modes']['native']['precision']} | {k['modes']['avx2']['precision']} | |"]
        for n in names:
            a, b = k["modes"]["native"][n], k["modes"]["avx2"][n]
            lines.append(f"| {n} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x |")
        lines.append("")
        if k["modes"]["native"]["capability"] == k["modes"]["avx2"]["capability"]:
            lines += ["This CPU has nothing beyond AVX2, so both columns ran the same kernels: their ratios show "
                      "how much the measurement itself varies, not what the mode changes.", ""]
    s = table.get("suite")
    if s:
        modes = [m for m in MODES if f"current {m}" in s["runs"]]
        stems = sorted(set(suite_seconds(s, "current", modes[0])) - {"total"})
        head = " | ".join(f"{v} {m}" for m in modes for v in ("baseline", "current"))
        lines += [f"### The quick suite, {s['baseline']} against this tree (`{s['command']}`; {s['cpu']}, "
                  f"{s['measured']}; {s['source']} data, seed {s['seed']}, {s['rounds']} round(s))", "",
                  f"| notebook | {head} | " + " | ".join(f"current / baseline, {m}" for m in modes) + " |",
                  "| --- |" + " ---: |" * (3 * len(modes))]
        secs = {(v, m): suite_seconds(s, v, m) for m in modes for v in ("baseline", "current")}
        for stem in [*stems, "total"]:
            cells = [f"{secs[v, m].get(stem, float('nan')):.0f}" for m in modes for v in ("baseline", "current")]
            ratios = [f"**{secs['current', m][stem] / secs['baseline', m][stem]:.2f}x**" if stem == "total"
                      else f"{secs['current', m].get(stem, float('nan')) / secs['baseline', m].get(stem, float('nan')):.2f}x"
                      for m in modes]
            lines.append(f"| {'whole suite (wall)' if stem == 'total' else stem} | " + " | ".join(cells + ratios) + " |")
        lines.append("")
    f, k = table.get("flops"), table.get("kernels")
    if f and k and s:
        # the modes this machine's suite was timed in (on an AVX2-only CPU native mode is AVX2 mode)
        modes = [m for m in MODES if f"current {m}" in s["runs"]]
        lines += [f"### Efficiency: FLOPs counted against the measured peak (`{f['command']}`; {f['cpu']})", "",
                  "FLOPs are every matrix product and convolution the notebook computes, forward and backward, "
                  "counted by `torch.utils.flop_counter` in one run of the current tree (training and evaluation "
                  "alike). The floor is those FLOPs at the peak measured above for the notebook's precision "
                  "(the larger matmul rate); efficiency is floor / seconds of the current tree.", "",
                  "| notebook | GFLOP | " + " | ".join(f"precision {m} | floor {m} s | seconds {m} | efficiency {m}"
                                                      for m in modes) + " |",
                  "| --- | ---: |" + " --- | ---: | ---: | ---: |" * len(modes)]
        seconds = {m: suite_seconds(s, "current", m) for m in modes}
        for stem, count in sorted(f["flops"].items()):
            cells = [f"{count / 1e9:,.0f}"]
            for m in modes:
                runs = s["runs"][f"current {m}"]
                prec = next((r["notebooks"][stem].get("precision") for r in runs if stem in r["notebooks"]), None) or "32"
                floor = count / 1e9 / peak(k["modes"][m], prec)
                secs = seconds[m].get(stem, float("nan"))
                cells += [prec, f"{floor:.1f}", f"{secs:.0f}", f"{floor / secs:.0%}"]
            lines.append(f"| {stem} | " + " | ".join(cells) + " |")
        lines.append("")
    sp = table.get("speedrun")
    if sp:
        lines += [f"### Speedrun in AVX2 mode, fp32: the kit's recipe against the record's (`{sp['command']}`; "
                  f"{sp['cpu']}, {sp['measured']})", "",
                  f"{sp['n_train']:,} training images, {sp['epochs']} epochs per run, {sp['source']} data; images/s "
                  "per epoch (mean over the runs).", "",
                  "| recipe | batch | image sizes | " + " | ".join(f"epoch {e + 1}" for e in range(sp["epochs"])) + " |",
                  "| --- | ---: | --- |" + " ---: |" * sp["epochs"]]
        for name, runs in sp["runs"].items():
            per_epoch = [_mean([r["images_per_s"][e] for r in runs]) for e in range(sp["epochs"])]
            sizes = ", ".join(str(x) for x in runs[0]["image_sizes"]) or "32"
            lines.append(f"| {name} | {runs[0]['batch_size']} | {sizes} | " + " | ".join(f"{v:.0f}" for v in per_epoch) + " |")
        lines.append("")
    return lines


README = REPO / "README.md"
COST_START, COST_END = "<!-- cost-table: python bench/cpu_modes.py readme -->", "<!-- /cost-table -->"


def cost_table(table: dict) -> list[str]:
    """README's table: the quick suite's wall minutes on every CPU `suite` was timed on, per mode,
    against the baseline commit timed beside it."""
    lines = ["| CPU (2 cores) | mode | `make run` (quick suite), minutes | before issue 26 (same machine) | measured |",
             "| --- | --- | ---: | ---: | --- |"]
    for cpu, rec in sorted(table.get("suite_by_cpu", {}).items()):
        for mode in MODES:
            if f"current {mode}" not in rec["runs"]:
                continue
            cur, base = suite_seconds(rec, "current", mode)["total"], suite_seconds(rec, "baseline", mode)["total"]
            label = "AVX2 mode" if mode == "avx2" else "native"
            lines.append(f"| {cpu} | {label} | **{cur / 60:.1f}** | {base / 60:.1f} ({rec['baseline']}) | {rec['measured'][:10]} |")
    return lines


def write_readme_costs(table: dict, readme: Path = README) -> None:
    """Replace the block between README's cost-table markers with `cost_table(table)`."""
    text = readme.read_text()
    if COST_START not in text or COST_END not in text:
        raise SystemExit(f"{readme}: no {COST_START} ... {COST_END} block to fill")
    head, rest = text.split(COST_START, 1)
    tail = rest.split(COST_END, 1)[1]
    readme.write_text(head + COST_START + "\n" + "\n".join(cost_table(table)) + "\n" + COST_END + tail)


if __name__ == "__main__":
    main()
