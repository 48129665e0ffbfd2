"""The bad-input suite: every public entry point of the training side of the kit (Trainer, the
callbacks, the loaders, evaluate / TTA, weight files) fed what a careless or hostile user gives.

Every case checks three things:
1. one clear line: the message is a single line naming the argument or the file;
2. the error is the kit's own: a ValueError / TypeError / FileNotFoundError raised by cifarkit code,
   with no chained torch traceback (``__cause__`` is None);
3. nothing is written or lost: the files under tmp_path are unchanged (an existing checkpoint stays
   byte-identical), no marker file from a crafted pickle appears, the model is not touched.

Count the cases with ``pytest tests/test_bad_input.py --collect-only -q | tail -1``.
"""
import hashlib
import io
import json
import math
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarkit.callbacks import StopAfter
from cifarkit.files import atomic_save
from cifarkit.optim import Lookahead
from cifarkit.resume import Checkpoint
from cifarkit.loader import FeatureLoader, TensorLoader, random_crop, random_cutout
from cifarkit.models import ResNetForCifar
from cifarkit.seeds import seed_everything
from cifarkit.training import Trainer, evaluate, tta_logits
from cifarkit.validation import WrongTypeError, integer, number_in, output_file, positive_number
from cifarkit.weights import apply_weights

from conftest import REPO, TinyNet, random_images

pytestmark = pytest.mark.usefixtures("one_thread")

CIFARKIT = str(REPO / "cifarkit")
X, Y = random_images(64)
NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------- the three checks

def snapshot(folder: Path) -> dict:
    """Every file under `folder` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def assert_clean_refusal(excinfo, *names) -> None:
    """Checks 1 and 2: a one-line message naming one of `names`, raised by cifarkit, no torch cause."""
    err, message = excinfo.value, str(excinfo.value)
    assert isinstance(err, (ValueError, TypeError, FileNotFoundError)), repr(err)
    assert "\n" not in message and message.strip(), message
    assert any(str(n) in message for n in names), f"{message!r} names none of {names}"
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_filename.startswith(CIFARKIT), tb.tb_frame.f_code.co_filename
    assert err.__cause__ is None


def refused(call, *names, folder: Path | None = None):
    """Run `call`, expect a clean refusal naming one of `names`, and (check 3) no change under `folder`."""
    before = snapshot(folder) if folder is not None else None
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as excinfo:
        call()
    assert_clean_refusal(excinfo, *names)
    if folder is not None:
        assert snapshot(folder) == before, "a refused call changed files"
    return excinfo.value


# --------------------------------------------------------------------------- numeric arguments

def loader(**kw):
    return TensorLoader(X, Y, **{"batch_size": 32, **kw})


def evaluate_with(**kw):
    return evaluate(TinyNet(), loader(), precision="32", **kw)


def cases(entry: str, make, name: str, *values) -> list:
    """pytest params `entry(name=value)` for each bad value, with readable ids."""
    return [pytest.param(make, name, v, id=f"{entry}({name}={v!r})") for v in values]


WRONG_NUMBERS = [
    *cases("Trainer", Trainer, "max_epochs", -1, 1.5, True, "3", NAN, None),
    *cases("Trainer", lambda **kw: Trainer(1, **kw), "grad_clip", -1, 0, NAN, INF, -INF, True, "1"),
    *cases("Trainer", lambda **kw: Trainer(1, **kw), "limit_train_batches", 0, -2, 2.5, True),
    *cases("Trainer", lambda **kw: Trainer(1, **kw), "sync_every", 0, -1, True, 1.5),
    *cases("Trainer", lambda **kw: Trainer(1, **kw), "progress", "yes", 2),
    *cases("Checkpoint", lambda **kw: Checkpoint("ck.pt", **kw), "every", 0, -1, 1.5, True, NAN),
    *cases("StopAfter", StopAfter, "epochs", 0, -3, 2.0, True),
    *cases("Lookahead", Lookahead, "total_steps", 0, True, 10.0),
    *cases("Lookahead", lambda **kw: Lookahead(10, **kw), "every", 0, False),
    *cases("Lookahead", lambda **kw: Lookahead(10, **kw), "decay", 1.0, -0.1, NAN, True, "0.9"),
    *cases("TensorLoader", loader, "batch_size", 0, -1, True, 2.5, "8", NAN),
    *cases("TensorLoader", loader, "crop_padding", -1, 32, True, 1.5),
    *cases("TensorLoader", loader, "cutout", -1, 33, True, 2.5),
    *cases("TensorLoader", loader, "resize", 0, -224, True, 224.0),
    *cases("TensorLoader", loader, "n", -1, True, 2.5),
    *cases("TensorLoader", loader, "seed", 1.5, True, "0"),
    *cases("TensorLoader", loader, "num_classes", 0, True, 10.0),
    *cases("TensorLoader", loader, "mean", (0.5, 0.5), (0.5, NAN, 0.5), 0.5),
    *cases("TensorLoader", loader, "std", (0.2, 0.0, 0.2), (-0.2, 0.2, 0.2), (0.2, INF, 0.2)),
    *cases("evaluate", evaluate_with, "tta_shift", -1, True, 1.5),
    *cases("tta_logits", lambda **kw: tta_logits(TinyNet(), torch.zeros(2, 3, 32, 32), **kw), "shift", 32, -1, True),
    *cases("random_crop", lambda **kw: random_crop(X[:4], generator=torch.Generator(), **kw), "padding", -1, 32, 1.5),
    *cases("random_cutout", lambda **kw: random_cutout(X[:4].float(), generator=torch.Generator(), **kw), "size",
           -1, 33, True),
    *cases("FeatureLoader", lambda **kw: FeatureLoader(torch.zeros(8, 4), torch.zeros(8, dtype=torch.int64), **kw),
           "batch_size", 0, True),
    *cases("seed_everything", seed_everything, "seed", 1.5, True, "1"),
]


@pytest.mark.parametrize("make, name, value", WRONG_NUMBERS)
def test_wrong_numeric_argument_is_refused_naming_it(make, name, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = refused(lambda: make(**{name: value}), name, folder=tmp_path)
    assert repr(value) in str(err) or name in ("mean", "std"), "the message shows what was given"
    if (isinstance(value, (bool, str)) or value is None) and name != "progress":
        assert isinstance(err, TypeError) and isinstance(err, ValueError), "wrong type: both TypeError and ValueError"
    assert not any(tmp_path.iterdir())


BAD_LABELS = {
    "float labels": (Y.float() + 0.7, "dtype"),
    "bool labels": (Y > 4, "dtype"),
    "label 42 of 10 classes": (torch.where(Y == 3, 42, Y), "42"),
    "negative label": (Y - 1, "-1"),
    "too few labels": (Y[:-1], "labels"),
    "2-D labels": (Y.view(8, 8), "labels"),
    "labels not a tensor": (object(), "y"),
}


BAD_IMAGES = {
    "float images": X.float(),
    "3-D images": X[0],
    "images not a tensor": "cifar.png",
}


@pytest.mark.parametrize("images", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_bad_images_are_refused_at_construction(images):
    refused(lambda: TensorLoader(images, Y), "x")


@pytest.mark.parametrize("labels, named", BAD_LABELS.values(), ids=BAD_LABELS.keys())
def test_bad_labels_are_refused_at_construction(labels, named):
    err = refused(lambda: TensorLoader(X, labels), "y ")
    assert str(err).startswith("y ") and named in str(err)


def test_label_range_follows_num_classes_and_can_be_switched_off():
    TensorLoader(X, Y % 2, num_classes=2)
    refused(lambda: TensorLoader(X, Y, num_classes=2), "num_classes=2")
    assert TensorLoader(X, torch.arange(64), num_classes=None).num_samples == 64  # indices as labels
    refused(lambda: FeatureLoader(torch.zeros(8, 4), torch.rand(8)), "dtype")


def test_numpy_integers_are_ints_and_the_messages_read_well():
    assert integer("n", np.int64(3), lo=0) == 3 and type(integer("n", np.int64(3))) is int
    with pytest.raises(ValueError, match=r"^grad_clip must be a positive number or None, got -1$"):
        positive_number("grad_clip", -1, optional=True)
    with pytest.raises(ValueError, match=r"^decay must be a number in \[0, 1\), got 1$"):
        number_in("decay", 1, 0, 1, hi_open=True)
    with pytest.raises(WrongTypeError, match=r"^max_epochs must be a non-negative int, got True \(a bool\)$"):
        Trainer(True)


# --------------------------------------------------------------------------- checkpoint files

class Marker:
    """Unpickling this calls os.system, which creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    """A real checkpoint (Adam + StepLR) of TinyNet after one epoch, as bytes."""
    path = tmp_path_factory.mktemp("good") / "ck.pt"
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    Trainer(1, precision="32", progress=False, log=False, callbacks=[Checkpoint(path)]).fit(
        model, loader(), optimizer=opt, scheduler=sched)
    return path.read_bytes()


def edited(good: bytes, tmp: Path, change) -> Path:
    """The good checkpoint, loaded, changed by `change(state)` and saved as tmp/ck.pt."""
    state = torch.load(io.BytesIO(good), weights_only=False)
    change(state)
    torch.save(state, tmp / "ck.pt")
    return tmp / "ck.pt"


def write(tmp: Path, data: bytes, name: str = "ck.pt") -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


def crafted_zip(tmp, good):
    torch.save({"model": Marker(tmp / "PWNED")}, tmp / "ck.pt")
    return tmp / "ck.pt"


def crafted_raw(tmp, good):
    return write(tmp, pickle.dumps({"model": Marker(tmp / "PWNED")}, protocol=2))


def crafted_deep(tmp, good):  # a real checkpoint with the payload hidden in a callback's state
    return edited(good, tmp, lambda s: s.__setitem__("callbacks", {"Evil": {"x": Marker(tmp / "PWNED")}}))


def symlink_to_dir(tmp, good):
    (tmp / "real_dir").mkdir()
    (tmp / "ck.pt").symlink_to(tmp / "real_dir")
    return tmp / "ck.pt"


def drop(*keys):
    return lambda s: [s.pop(k) for k in keys]


def escaping(tmp, good):
    target = Path("/etc/passwd")
    if not target.is_file():
        pytest.skip("no /etc/passwd here")
    return tmp / ("../" * len(tmp.parts)) / "etc" / "passwd"


def other_shape(state):
    state["model"]["fc.weight"] = torch.zeros(7, 16)
    state["model"]["fc.bias"] = torch.zeros(7)


def renamed_key(state):
    state["model"]["head.weight"] = state["model"].pop("fc.weight")


CHECKPOINT_FILES = {  # name: (make the file, words the message must contain)
    "missing": (lambda tmp, good: tmp / "nope.pt", "no cifarkit checkpoint"),
    "empty": (lambda tmp, good: write(tmp, b""), "empty"),
    "truncated": (lambda tmp, good: write(tmp, good[: len(good) // 2]), "truncated"),
    "cut to 100 bytes": (lambda tmp, good: write(tmp, good[:100]), "could not read"),
    "random bytes": (lambda tmp, good: write(tmp, random.Random(0).randbytes(4096)), "could not read"),
    "text file": (lambda tmp, good: write(tmp, b"epoch,loss\n1,2.3\n"), "could not read"),
    "crafted pickle (torch.save)": (crafted_zip, "posix.system"),
    "crafted pickle (raw)": (crafted_raw, "trust_checkpoint=True"),
    "crafted pickle inside a real checkpoint": (crafted_deep, "trust_checkpoint=True"),
    "data cache": (lambda tmp, good: _save(tmp, {"x_train": X, "y_train": Y}),
                   "no 'model' entry (keys: x_train, y_train)"),
    "bare state dict": (lambda tmp, good: _save(tmp, TinyNet().state_dict()), "is not a cifarkit checkpoint"),
    "a list": (lambda tmp, good: _save(tmp, [1, 2, 3]), "holds a list"),
    "no optimizer entry": (lambda tmp, good: edited(good, tmp, drop("optimizer")), "no 'optimizer' entry"),
    "model entry not a state dict": (lambda tmp, good: edited(good, tmp, lambda s: s.update(model=[1])),
                                     "not a state dict"),
    "negative epoch": (lambda tmp, good: edited(good, tmp, lambda s: s.update(epoch=-3)), "epoch is -3"),
    "history without records": (lambda tmp, good: edited(good, tmp, lambda s: s.update(history={})), "history"),
    "rng without numpy": (lambda tmp, good: edited(good, tmp, lambda s: s["rng"].pop("numpy")), "rng"),
    "another model (shapes)": (lambda tmp, good: edited(good, tmp, other_shape), "fc.weight has shape (7, 16)"),
    "another model (names)": (lambda tmp, good: edited(good, tmp, renamed_key), "head.weight"),
    "a directory": (lambda tmp, good: (tmp / "ck.pt").mkdir() or tmp / "ck.pt", "is a directory"),
    "a symlink to a directory": (symlink_to_dir, "is a directory"),
    "a path escaping the folder": (escaping, "could not read"),
    "a NUL byte in the name": (lambda tmp, good: str(tmp / "ck\0.pt"), "no cifarkit checkpoint"),
}


def _save(tmp, obj):
    torch.save(obj, tmp / "ck.pt")
    return tmp / "ck.pt"


@pytest.mark.parametrize("make, words", CHECKPOINT_FILES.values(), ids=CHECKPOINT_FILES.keys())
def test_bad_checkpoint_is_refused_before_training(make, words, good_checkpoint, tmp_path):
    path = make(tmp_path, good_checkpoint)
    model, epochs = TinyNet(), []
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(1, precision="32", progress=False, log=False, callbacks=[Checkpoint(tmp_path / "new.pt")])
    trainer.callbacks[0].on_epoch_end = lambda *a: epochs.append(a)  # would run after a training epoch
    err = refused(lambda: trainer.fit(model, loader(), resume_from=path), str(path), folder=tmp_path)
    assert words in str(err)
    assert not (tmp_path / "PWNED").exists(), "the crafted pickle ran"
    assert not epochs and not (tmp_path / "new.pt").exists()
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items()), "the model was changed"


MISMATCHED_RUNS = {  # what the resumed run has that the checkpoint (Adam, StepLR) has not
    "SGD instead of Adam": (lambda m: dict(optimizer=torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)),
                            None, "was saved with optimizer Adam, this run uses SGD"),
    "SGD into an older Adam checkpoint": (lambda m: dict(optimizer=torch.optim.SGD(m.parameters(), lr=0.1)),
                                          drop("optimizer_class"), "another optimizer than this run's SGD"),
    "two parameter groups": (lambda m: dict(optimizer=torch.optim.Adam([{"params": m.fc.parameters()}, {
        "params": [p for n, p in m.named_parameters() if not n.startswith("fc.")]}])), None, "parameter group"),
    "a frozen layer": (lambda m: dict(optimizer=torch.optim.Adam(list(m.parameters())[2:])), None,
                       "sizes [8]"),
    "another scheduler": (lambda m: _with_scheduler(m, torch.optim.lr_scheduler.ExponentialLR, gamma=0.9),
                          None, "scheduler StepLR, this run uses ExponentialLR"),
}


def _with_scheduler(model, kind, **kw):
    opt = torch.optim.Adam(model.parameters())
    return dict(optimizer=opt, scheduler=kind(opt, **kw))


@pytest.mark.parametrize("fit_kw, change, words", MISMATCHED_RUNS.values(), ids=MISMATCHED_RUNS.keys())
def test_checkpoint_of_another_run_setup_is_refused_before_loading(fit_kw, change, words, good_checkpoint,
                                                                     tmp_path):
    path = edited(good_checkpoint, tmp_path, change) if change else write(tmp_path, good_checkpoint)
    model = TinyNet()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(2, precision="32", progress=False, log=False, callbacks=[Checkpoint(path)])
    err = refused(lambda: trainer.fit(model, loader(), resume_from=path, **fit_kw(model)), str(path),
                  folder=tmp_path)
    assert words in str(err)
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_crafted_checkpoint_runs_only_with_the_explicit_opt_in(tmp_path):
    path = crafted_zip(tmp_path, None)
    for trust in ("yes", 1):  # a truthy non-bool must not enable unpickling
        refused(lambda: Trainer(1, progress=False, log=False).fit(TinyNet(), loader(), resume_from=path,
                                                                    trust_checkpoint=trust), "trust_checkpoint")
    refused(lambda: Trainer(1, progress=False, log=False).fit(TinyNet(), loader(), resume_from=3), "resume_from")
    assert not (tmp_path / "PWNED").exists()
    # the opt-in really unpickles: the payload runs, then the layout check fails
    with pytest.raises(ValueError, match="no 'optimizer' entry"):
        Trainer(1, progress=False, log=False).fit(TinyNet(), loader(), resume_from=path, trust_checkpoint=True)
    assert (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- weight files

WEIGHT_FILES = {
    "missing": (lambda tmp, good: tmp / "nope.pt", "neither None"),
    "empty": (lambda tmp, good: write(tmp, b""), "empty"),
    "truncated": (lambda tmp, good: write(tmp, good[: len(good) // 2]), "truncated"),
    "random bytes": (lambda tmp, good: write(tmp, random.Random(1).randbytes(2048)), "could not read"),
    "crafted pickle (torch.save)": (crafted_zip, "posix.system"),
    "crafted pickle (raw)": (crafted_raw, "could not read"),
    "a directory": (lambda tmp, good: (tmp / "ck.pt").mkdir() or tmp / "ck.pt", "neither None"),
    "a list": (lambda tmp, good: _save(tmp, [torch.zeros(1)]), "does not hold a state dict"),
    "wrong shapes": (lambda tmp, good: _save(tmp, {**TinyNet().state_dict(), "conv1.weight": torch.zeros(4, 3, 3, 3)}),
                     "conv1.weight"),
    "another model": (lambda tmp, good: _save(tmp, torch.nn.Linear(3, 4).state_dict()), "missing keys"),
    "a path escaping the folder": (escaping, "could not read"),
}


@pytest.mark.parametrize("make, words", WEIGHT_FILES.values(), ids=WEIGHT_FILES.keys())
def test_bad_weights_file_is_refused(make, words, good_checkpoint, tmp_path):
    path = make(tmp_path, good_checkpoint)
    model = TinyNet()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    err = refused(lambda: apply_weights(model, path, "resnet18"), str(path), folder=tmp_path)
    assert words in str(err)
    assert not (tmp_path / "PWNED").exists()
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_resnet_for_cifar_refuses_a_crafted_weights_file(tmp_path):
    path = crafted_zip(tmp_path, None)
    refused(lambda: ResNetForCifar(weights=path), str(path), folder=tmp_path)
    assert not (tmp_path / "PWNED").exists()


HISTORY_FILES = {
    "missing": (lambda tmp: tmp / "h.json", "no History file"),
    "empty": (lambda tmp: write(tmp, b"", "h.json"), "could not read"),
    "not JSON": (lambda tmp: write(tmp, b"epoch,loss\n1,2\n", "h.json"), "could not read"),
    "binary": (lambda tmp: write(tmp, bytes(range(256)), "h.json"), "could not read"),
    "a JSON list": (lambda tmp: write(tmp, b"[1, 2]", "h.json"), "no list of 'records'"),
    "records not dicts": (lambda tmp: write(tmp, b'{"records": [1]}', "h.json"), "no list of 'records'"),
    "a directory": (lambda tmp: (tmp / "h.json").mkdir() or tmp / "h.json", "is a directory"),
}


@pytest.mark.parametrize("make, words", HISTORY_FILES.values(), ids=HISTORY_FILES.keys())
def test_bad_history_file_is_refused(make, words, tmp_path):
    from cifarkit.history_files import history_from_json
    path = make(tmp_path)
    err = refused(lambda: history_from_json(path), str(path), folder=tmp_path)
    assert words in str(err)


@pytest.mark.parametrize("write", ["history_to_json", "history_to_csv"])
def test_history_is_not_written_over_a_directory(write, tmp_path):
    from cifarkit import history_files
    from cifarkit.training import History
    history = History([{"epoch": 1, "train_loss": 1.0}])
    refused(lambda: getattr(history_files, write)(history, tmp_path), str(tmp_path), folder=tmp_path)


# --------------------------------------------------------------------------- checkpoint targets

def read_only_dir(tmp):
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder / "ck.pt"
    (folder / "probe").unlink()
    folder.chmod(0o700)
    pytest.skip("running as root: a read-only mode does not stop writes here (see the /sys case)")


def read_only_mount(tmp):
    if not Path("/sys").is_dir() or _writable("/sys"):
        pytest.skip("no read-only /sys here")
    return Path("/sys/cifarkit-test/ck.pt")


def _writable(folder) -> bool:
    try:
        with open(Path(folder) / ".cifarkit-probe", "w"):
            pass
    except OSError:
        return False
    os.remove(Path(folder) / ".cifarkit-probe")
    return True


CHECKPOINT_TARGETS = {
    "a directory": (lambda tmp: tmp, "is a directory"),
    "a file as the folder": (lambda tmp: write(tmp, b"x", "notes.txt") / "ck.pt", "is a file, not a folder"),
    "a read-only folder": (read_only_dir, "not writable"),
    "a read-only mount": (read_only_mount, "not writable"),
    "an empty name": (lambda tmp: "", "must name a file"),
    "a number": (lambda tmp: 3, "Checkpoint path"),
}


@pytest.mark.parametrize("make, words", CHECKPOINT_TARGETS.values(), ids=CHECKPOINT_TARGETS.keys())
def test_unwritable_checkpoint_target_is_refused_at_construction(make, words, tmp_path):
    target = make(tmp_path)
    try:
        err = refused(lambda: Checkpoint(target), "Checkpoint path", folder=tmp_path)
    finally:
        for folder in tmp_path.iterdir():
            folder.chmod(0o700)
    assert words in str(err)


def test_checkpoint_target_that_became_a_directory_fails_before_the_first_epoch(tmp_path):
    checkpoint = Checkpoint(tmp_path / "ck.pt")
    (tmp_path / "ck.pt").mkdir()
    model = TinyNet()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(3, precision="32", progress=False, log=False, callbacks=[checkpoint])
    refused(lambda: trainer.fit(model, loader()), "ck.pt", folder=tmp_path)
    assert len(trainer.history) == 0
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_atomic_save_into_a_read_only_folder_keeps_the_old_file(tmp_path):
    path = tmp_path / "locked" / "ck.pt"
    atomic_save({"v": 1}, path)
    path.parent.chmod(0o500)
    try:
        if _writable(path.parent):
            pytest.skip("running as root: a read-only mode does not stop writes here")
        with pytest.raises(PermissionError):
            atomic_save({"v": 2}, path)
        assert torch.load(path) == {"v": 1} and [p.name for p in path.parent.iterdir()] == ["ck.pt"]
    finally:
        path.parent.chmod(0o700)


def test_output_file_leaves_nothing_behind(tmp_path):
    assert output_file("out", tmp_path / "a" / "b" / "x.pt") == tmp_path / "a" / "b" / "x.pt"
    assert not any(tmp_path.iterdir()), "checking must not create the folders or a probe file"


# --------------------------------------------------------------------------- kill -9 during saves

@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fault injection forks")
def test_fault_injection_quick_mode_finds_no_corrupt_or_orphaned_files(tmp_path):
    out = tmp_path / "faults.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "fault_injection.py"), "--quick", "--kills", "8",
                          "--mb", "2", "--json", str(out)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    saves, resume = figures["saves"], figures["resume"]
    assert saves["kills"] == 8 and saves["corrupt"] == 0 and saves["older_than_before"] == 0
    assert saves["orphaned_after_next_save"] == 0
    assert resume["identical"] == resume["rounds"] == 1 and resume["orphaned_after_resume"] == 0
    assert "0 corrupt" in run.stdout and "identical weights" in run.stdout
    assert not math.isnan(saves["save_ms"])


def test_flag_and_positive_ints_refuse_near_misses_naming_the_argument():
    from cifarkit.validation import WrongTypeError, flag, positive_ints

    assert flag("muon", False) is False
    for bad in (1, "yes", None):
        with pytest.raises(WrongTypeError, match=r"^muon must be True or False, got "):
            flag("muon", bad)
    assert positive_ints("widths", [8, 16]) == (8, 16)
    assert positive_ints("widths", (1, 2, 3, 4, 5), 5) == (1, 2, 3, 4, 5)
    for bad, count in (((), None), ((8, 0), None), ((8, True), None), ((8, 2.0), None), ((1, 2), 5)):
        with pytest.raises(ValueError, match=r"^widths must be (exactly 5|one or more) positive ints"):
            positive_ints("widths", bad, count)
    for bad in (24, "24", None):  # not a sequence: the same one-line message, as a wrong type
        with pytest.raises(WrongTypeError, match=r"^widths must be one or more positive ints"):
            positive_ints("widths", bad)
