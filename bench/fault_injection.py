"""Fault injection: `kill -9` during checkpoint saves and during training, then check what is left.

(a) A child process saves a checkpoint-sized file in a loop with `atomic_save`; it is killed with
    SIGKILL at a random moment, N times. After each kill the file must load (safely) and hold one
    complete version, the last one written or a newer one; the next save must leave no orphaned
    temporary file next to it.
(b) A tiny model trains with a `Checkpoint` callback and is killed at a random moment after its
    first checkpoint (often in the middle of an epoch, sometimes in the middle of a save); a new
    process resumes from the checkpoint. Its final weights and history must equal those of an
    uninterrupted run exactly.

    python bench/fault_injection.py [--kills 50] [--resume-rounds 3] [--quick] [--json out.json]

Needs `os.fork` (Linux, macOS): the children are forks of this process, so each round costs
milliseconds rather than a fresh `import torch`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import cifarkit as ck  # noqa: E402
from cifarkit.files import atomic_save, safe_load  # noqa: E402

TIMING_KEYS = ("seconds", "images_per_s")  # differ between any two runs


def temp_files(path: Path) -> list:
    """The temporary files of saves to `path` now in its folder."""
    return sorted(p.name for p in path.parent.glob(f".{path.name}.*.tmp"))


def fork(fn, *args) -> int:
    """Run `fn(*args)` in a forked child with its output silenced; return the child's pid."""
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller's code
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            fn(*args)
            code = 0
        finally:
            os._exit(code)
    return pid


def kill(pid: int) -> bool:
    """SIGKILL `pid` and reap it; False if it had already finished on its own."""
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done:
        return False
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return True


def wait(pid: int) -> None:
    """Wait for a child and fail unless it exited cleanly."""
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        raise RuntimeError(f"child {pid} failed (status {status})")


# --------------------------------------------------------------------------- (a) kills during saves

def version_blob(version: int, numel: int) -> dict:
    """A file whose every element tells which save wrote it, so a mixed or cut one is detected."""
    return {"version": version, "payload": torch.full((numel,), version, dtype=torch.int32)}


def save_forever(path: Path, first_version: int, numel: int) -> None:
    """The child of (a): save versions first_version, first_version + 1, ... until killed."""
    version = first_version
    while True:
        atomic_save(version_blob(version, numel), path)
        version += 1


def read_version(path: Path, numel: int) -> int:
    """The version held by `path`; raises if the file is unreadable or not one complete version."""
    blob = safe_load(path, "test file")
    payload, version = blob["payload"], blob["version"]
    if payload.numel() != numel or not bool((payload == version).all()):
        raise ValueError(f"{path} mixes versions or is cut short")
    return version


def kills_during_saves(folder: Path, kills: int, numel: int, rng: random.Random) -> dict:
    """Experiment (a); returns its counts."""
    path = folder / "saved.pt"
    atomic_save(version_blob(0, numel), path)
    start = time.perf_counter()
    for _ in range(3):
        atomic_save(version_blob(0, numel), path)
    save_s = (time.perf_counter() - start) / 3
    last, corrupt, went_back, mid_write, orphaned = 0, 0, 0, 0, 0
    for _ in range(kills):
        pid = fork(save_forever, path, last + 1, numel)
        time.sleep(rng.uniform(0, 4 * save_s))  # within the first few saves, often in the middle of one
        kill(pid)
        mid_write += bool(temp_files(path))
        try:
            version = read_version(path, numel)
        except Exception:  # noqa: BLE001 -- any failure to read it back is a corrupt file
            corrupt += 1
            version = last
        went_back += version < last
        last = version
        atomic_save(version_blob(last, numel), path)  # the next save
        orphaned += len(temp_files(path))
    return {"kills": kills, "corrupt": corrupt, "older_than_before": went_back, "killed_mid_write": mid_write,
            "orphaned_after_next_save": orphaned, "file_mb": path.stat().st_size / 2**20,
            "save_ms": 1000 * save_s}


# --------------------------------------------------------------------------- (b) kill and resume

EPOCHS = 8


def tiny_net() -> nn.Module:
    """A small convnet with BatchNorm and dropout (so the random state matters too)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(16, 10))


def train(checkpoint: Path, out: Path | None, resume: bool) -> None:
    """One training run (in a child); writes the final weights and history to `out`."""
    ck.seed_everything(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (256, 3, 32, 32), generator=g, dtype=torch.uint8)
    loader = ck.TensorLoader(x, torch.arange(256) % 10, 32, shuffle=True, augment=True, seed=0, device="cpu")
    model = tiny_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    trainer = ck.Trainer(EPOCHS, device="cpu", precision="32", progress=False, log=False,
                         callbacks=[ck.Checkpoint(checkpoint)])
    history = trainer.fit(model, loader, optimizer=optimizer, scheduler=scheduler,
                          resume_from=checkpoint if resume else None)
    records = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history.records]
    if out is not None:
        torch.save({"weights": model.state_dict(), "records": records, "seconds": history["seconds"]}, out)


def same_run(a: dict, b: dict) -> bool:
    """Exactly equal weights and (timing aside) history."""
    return (a["records"] == b["records"] and a["weights"].keys() == b["weights"].keys()
            and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"]))


def kill_and_resume(folder: Path, rounds: int, rng: random.Random) -> dict:
    """Experiment (b); returns its counts."""
    reference = folder / "reference.pt"
    wait(fork(train, folder / "reference-ck.pt", reference, False))
    ref = torch.load(reference, weights_only=True)
    epoch_s = sum(ref["seconds"]) / len(ref["seconds"])
    identical, killed_after, finished_first, orphaned = 0, [], 0, 0
    for i in range(rounds):
        checkpoint, out = folder / f"run{i}.pt", folder / f"run{i}-final.pt"
        pid = fork(train, checkpoint, None, False)
        while not checkpoint.exists() and not os.waitpid(pid, os.WNOHANG)[0]:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 3 * epoch_s))
        if not kill(pid):
            finished_first += 1
        killed_after.append(safe_load(checkpoint, "checkpoint", numpy=True)["epoch"])
        wait(fork(train, checkpoint, out, True))
        orphaned += len(temp_files(checkpoint))
        identical += same_run(ref, torch.load(out, weights_only=True))
    return {"rounds": rounds, "identical": identical, "killed_after_epochs": killed_after,
            "finished_before_kill": finished_first, "orphaned_after_resume": orphaned, "epochs": EPOCHS}


def main(argv=None) -> dict:
    """Run both experiments, print the figures and return them."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, help="kills during saves (default 50; 10 with --quick)")
    p.add_argument("--resume-rounds", type=int, help="kill-and-resume rounds (default 3; 1 with --quick)")
    p.add_argument("--mb", type=float, help="size of the saved file in MiB (default 16; 4 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer, smaller rounds (for the test suite)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    if not hasattr(os, "fork"):
        raise SystemExit("fault_injection.py needs os.fork (Linux or macOS)")
    kills = args.kills if args.kills is not None else (10 if args.quick else 50)
    rounds = args.resume_rounds if args.resume_rounds is not None else (1 if args.quick else 3)
    numel = int((args.mb or (4 if args.quick else 16)) * 2**20 / 4)
    torch.set_num_threads(1)  # the forked children must not inherit a running thread pool
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="cifarkit-faults-") as tmp:
        saves = kills_during_saves(Path(tmp), kills, numel, rng)
        resume = kill_and_resume(Path(tmp), rounds, rng)
    result = {"saves": saves, "resume": resume}
    print(f"{saves['kills']} kills during save ({saves['file_mb']:.0f} MiB file, {saves['save_ms']:.0f} ms "
          f"per save; {saves['killed_mid_write']} left a temp file mid-write): {saves['corrupt']} corrupt, "
          f"{saves['older_than_before']} older than before the kill, {saves['orphaned_after_next_save']} "
          f"orphaned temp files after the next save")
    verdict = "identical" if resume["identical"] == resume["rounds"] else "DIFFERENT"
    print(f"resume after kill: {verdict} weights and history in {resume['identical']} of {resume['rounds']} "
          f"runs (killed after epoch {', '.join(map(str, resume['killed_after_epochs']))} of {EPOCHS}; "
          f"{resume['finished_before_kill']} finished before the kill; "
          f"{resume['orphaned_after_resume']} orphaned temp files after resuming)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
