#!/usr/bin/env bash
# The kit on a GPU: the quick suite and one 8-epoch `speedrun`, timed, recorded in bench/gpu_results.json
# (bench/run_all.py tables it in bench/results.md, section "gpu"), with the card's name.
#
#   bash bench/gpu_check.sh                  # CIFAR-10 from $CIFARKIT_DATA (downloaded when missing)
#   SOURCE=cifar10-unverified bash bench/gpu_check.sh
#
# Run it from the repository root in an environment with the kit installed (`make install`, or
# `pip install -e .` on Colab). It refuses to run without a CUDA GPU. On a card of compute capability
# below 8.0 (T4, V100) the kit trains in float16 with a gradient scaler, from 8.0 on in bfloat16: the
# precision each notebook used is recorded beside its seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
SOURCE=${SOURCE:-cifar10}
OUT=${OUT:-bench/runs/gpu-check-$(date +%Y%m%d-%H%M%S)}

"$PY" - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("bench/gpu_check.sh: no CUDA GPU here (torch.cuda.is_available() is False)")
from cifarkit import devices
d = torch.device("cuda")
print(f"GPU: {torch.cuda.get_device_name(d)}, compute capability {torch.cuda.get_device_capability(d)}, "
      f"the kit picks precision {devices.resolve_precision('auto', d)}")
EOF

mkdir -p "$OUT"
start=$(date +%s)
"$PY" -m cifarkit run --profile quick --out "$OUT/suite" -p data_source="$SOURCE" || true
suite_s=$(( $(date +%s) - start ))
start=$(date +%s)
"$PY" bench/accuracy.py speedrun --source "$SOURCE" --out "$OUT/speedrun" --results "$OUT/speedrun.json"
speedrun_s=$(( $(date +%s) - start ))

"$PY" - "$OUT" "$suite_s" "$speedrun_s" "$SOURCE" <<'EOF'
import json, sys, time
from pathlib import Path
import torch
from cifarkit import devices
out, suite_s, speedrun_s, source = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
summary = json.loads((out / "suite" / "summary.json").read_text())
speedrun = next(iter(json.loads((out / "speedrun.json").read_text()).values()))
d = torch.device("cuda")
entry = {
    "card": torch.cuda.get_device_name(d), "capability": list(torch.cuda.get_device_capability(d)),
    "precision": devices.resolve_precision("auto", d), "torch": torch.__version__, "source": source,
    "measured": time.strftime("%Y-%m-%d %H:%M"), "suite_wall_s": suite_s, "suite_ok": summary["ok"],
    "notebooks": {nb["name"]: {"seconds": nb["duration_s"], "status": nb["status"]} for nb in summary["notebooks"]},
    "verdicts": summary.get("verdicts"),
    "speedrun": {"wall_s": speedrun_s, "train_minutes": speedrun["train_minutes"], "test_acc": speedrun["test_acc"],
                 "test_acc_tta": speedrun["test_acc_tta"], "epochs": speedrun["epochs"]},
}
path = Path("bench/gpu_results.json")
table = json.loads(path.read_text()) if path.is_file() else {}
table[f"{entry['card']} {entry['measured']}"] = entry
path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
print(f"recorded in {path}: quick suite {suite_s:.0f} s (ok: {summary['ok']}), speedrun "
      f"{speedrun['test_acc_tta']:.2%} with TTA in {speedrun['train_minutes']:.1f} training minutes")
EOF
"$PY" bench/run_all.py --only gpu
