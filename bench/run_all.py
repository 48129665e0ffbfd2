"""`make bench`: run the benchmarks and write bench/results.md (never part of `make test`).

Every figure is a ratio measured side by side in one run on this machine, with the command that
reproduces it. Results of earlier runs that are not re-measured here (long real-data trainings
from bench/accuracy.py) are kept from bench/accuracy_results.json when present.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loop_throughput  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main():
    started = time.strftime("%Y-%m-%d %H:%M")
    loop = loop_throughput.main(["--images", "1536", "--repeats", "2"])
    lines = [
        "# Benchmarks", "",
        f"Measured {started} on {machine()} by `make bench` (`python bench/run_all.py`).", "",
        "## 1. Training-loop throughput (GatedCNN, batch 128, crop+flip augmentation)", "",
        "| loop | images/s |", "| --- | ---: |",
        *[f"| {name} | {rate:.1f} |" for name, rate in loop["images_per_s"].items()], "",
        f"**kit / textbook: {loop['ratio_kit_vs_textbook']:.2f}x** (target: at least 1.5x); "
        f"with fp32 on both sides the data path alone gives {loop['ratio_kit_fp32_vs_textbook']:.2f}x. "
        f"Kit precision: {loop['precision_auto']}.", "",
        f"Reproduce: `{loop['command']}`", "",
    ]
    accuracy = HERE / "accuracy_results.json"
    if accuracy.exists():
        lines += ["## Real-data accuracy (from bench/accuracy.py)", "", "```", accuracy.read_text().strip(), "```", ""]
    (HERE / "results.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'results.md'}")


if __name__ == "__main__":
    main()
