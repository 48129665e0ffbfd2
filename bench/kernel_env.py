"""What a kernel's inherited environment costs a training epoch (bench/results.md, section "kernelenv").

    python bench/kernel_env.py [--images 1024] [--rounds 2] [--json bench/kernel_env.json]

Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (and one thread), and a process
that starts a LocalCluster gets the same variables in its own environment. A notebook kernel that
inherits the malloc setting hands its tensors' memory back to the system after each batch and
faults it in again. `cifarkit.course.engine` therefore keeps it from the kernels
(`NANNY_MEMORY_VARIABLES`).

Each case trains one epoch of notebook 01's model (ResNet-18, ImageNet stem, batch 64, Adam, the
kit's `Trainer`, one thread, synthetic images) in a fresh process whose environment differs only in
that variable; the cases alternate, `--rounds` times each. The child reports its user and system CPU
seconds, minor page faults and wall seconds; CPU seconds and faults depend little on other load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORD = HERE / "kernel_env.json"
#: the cases: the variable as a Dask worker's kernel inherited it, and as the engine leaves it now
CASES = {"MALLOC_TRIM_THRESHOLD_=65536 (a Dask worker's)": "65536", "unset (the engine's kernels)": None}

CHILD = """
import json, os, resource, sys, time
import torch
import cifarkit as ck
torch.set_num_threads(1)
images, batch = int(sys.argv[1]), int(sys.argv[2])
data = ck.synthetic_cifar(n_train=images, n_test=64, seed=0)
model = ck.ResNetForCifar(stem="imagenet")
loader = ck.TensorLoader(data.x_train, data.y_train, batch, shuffle=True, drop_last=True, seed=0)
before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
ck.Trainer(1, progress=False).fit(model, loader, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
                  "minor_faults": after.ru_minflt - before.ru_minflt, "wall_s": time.perf_counter() - t0,
                  "seen": os.environ.get("MALLOC_TRIM_THRESHOLD_")}))
"""


def one(value: str | None, images: int, batch: int) -> dict:
    """One epoch in a fresh process with MALLOC_TRIM_THRESHOLD_ set to `value` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env.update(PYTHONPATH=str(REPO), CIFARKIT_HEADLESS="1", OMP_NUM_THREADS="1")
    if value is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = value
    out = subprocess.run([sys.executable, "-c", CHILD, str(images), str(batch)], env=env, capture_output=True,
                         text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    if row["seen"] != value:
        raise RuntimeError(f"the child saw MALLOC_TRIM_THRESHOLD_={row['seen']!r}, not {value!r}")
    return row


def measure(images: int = 1024, batch: int = 64, rounds: int = 2) -> dict:
    """Each case `rounds` times, alternating; the medians and the ratios set / unset."""
    runs: dict[str, list[dict]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, value in CASES.items():
            runs[name].append(one(value, images, batch))
    medians = {name: {k: statistics.median(r[k] for r in rows) for k in ("user_s", "sys_s", "minor_faults", "wall_s")}
               for name, rows in runs.items()}
    dask_case, clean = (medians[name] for name in CASES)
    cpu = {name: m["user_s"] + m["sys_s"] for name, m in medians.items()}
    return {"images": images, "batch": batch, "rounds": rounds, "medians": medians, "runs": runs,
            "cpu_ratio": cpu[next(iter(CASES))] / cpu[list(CASES)[1]],
            "fault_ratio": dask_case["minor_faults"] / max(clean["minor_faults"], 1),
            "machine": cpu_name(), "torch": _torch_version(), "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": os.getloadavg()[0]}


def cpu_name() -> str:
    sys.path.insert(0, str(HERE))
    import cpu_modes
    return cpu_modes.cpu_name()


def _torch_version() -> str:
    import torch
    return torch.__version__


def render(record: dict | None) -> list[str]:
    """The section of bench/results.md from the record (a placeholder without one)."""
    lines = ["## 13. What a kernel inherits: Dask's malloc setting (bench/kernel_env.py)", ""]
    if record is None:
        return lines + ["_Not measured yet: `python bench/kernel_env.py`._", ""]
    lines += [f"One training epoch of notebook 01's model ({record['images']:,} synthetic images, batch "
              f"{record['batch']}, one thread) in a fresh process per case, cases alternating, median of "
              f"{record['rounds']}; {record['machine']}, torch {record['torch']}, {record['measured']} (load "
              f"average {record['load']:.1f} when it started).", "",
              "| kernel environment | user CPU s | system CPU s | minor page faults | wall s |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, m in record["medians"].items():
        lines.append(f"| {name} | {m['user_s']:.1f} | {m['sys_s']:.1f} | {m['minor_faults']:,.0f} | {m['wall_s']:.1f} |")
    lines += ["", f"With the variable the epoch costs **{record['cpu_ratio']:.2f}x** the CPU time and "
              f"{record['fault_ratio']:.0f}x the page faults. Notebooks run by `cifarkit run --workers/--scheduler` "
              "had it until the engine stopped passing it on; a process that had started a LocalCluster "
              "also gave its later kernels `OMP_NUM_THREADS=1`.", ""]
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=str(RECORD))
    args = p.parse_args(argv)
    if args.images < args.batch or args.rounds < 1:
        p.error("--images must hold at least one --batch, and --rounds must be 1 or more")
    record = measure(args.images, args.batch, args.rounds)
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print("\n".join(render(record)))
    return record


if __name__ == "__main__":
    main()
