import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from cifarkit.callbacks import Callback, StopAfter
from cifarkit.files import atomic_save
from cifarkit.optim import Lookahead
from cifarkit.loader import TensorLoader
from cifarkit.history_files import history_from_json, history_to_csv, history_to_json
from cifarkit.seeds import seed_everything
from cifarkit.training import History, NonFiniteLossError, Trainer, evaluate, tta_logits

from conftest import REPO, random_images, tiny_cnn


def loaders(n=256, batch=32, seed=0):
    x, y = random_images(n, seed)
    return (TensorLoader(x, y, batch, shuffle=True, augment=True, seed=seed),
            TensorLoader(x, y, 128))


def test_fit_returns_history_with_every_metric():
    train, val = loaders()
    history = Trainer(2, precision="32", progress=False, log=False).fit(tiny_cnn(), train, val)
    assert len(history) == 2 and history["epoch"] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"):
        assert all(v is not None and math.isfinite(v) for v in history[key]), key
    assert history.best("val_acc")["val_acc"] == max(history["val_acc"])
    assert history.best("val_loss")["val_loss"] == min(history["val_loss"])


def test_training_learns_a_separable_problem():
    # images whose class is their brightness: a convnet must get this right quickly
    y = torch.arange(400) % 2
    x = (y * 200 + 20).view(-1, 1, 1, 1).expand(-1, 3, 32, 32).to(torch.uint8).contiguous()
    train = TensorLoader(x, y, 32, shuffle=True)
    model = tiny_cnn(num_classes=2)
    before = evaluate(model, TensorLoader(x, y, 100), precision="32")["acc"]
    Trainer(3, precision="32", progress=False, log=False).fit(model, train)
    after = evaluate(model, TensorLoader(x, y, 100), precision="32")
    assert after["acc"] == 1.0 and after["n"] == 400
    assert before < 1.0


def test_default_optimizer_gets_only_trainable_parameters():
    model = tiny_cnn()
    for p in model[0].parameters():
        p.requires_grad_(False)
    frozen = model[0].weight.clone()
    trainer = Trainer(1, precision="32", progress=False, log=False)
    trainer.fit(model, loaders()[0])
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    assert torch.equal(model[0].weight, frozen)


def test_optimizer_of_another_model_is_refused():
    other = tiny_cnn()
    with pytest.raises(ValueError, match="another model"):
        Trainer(1, progress=False, log=False).fit(tiny_cnn(), loaders()[0],
                                                   optimizer=torch.optim.SGD(other.parameters(), lr=0.1))


def test_non_finite_loss_names_epoch_and_batch():
    class Exploding(Callback):
        pass

    def bad_loss(out, y):
        loss = nn.functional.cross_entropy(out, y)
        bad_loss.calls += 1
        return loss * float("nan") if bad_loss.calls == 13 else loss
    bad_loss.calls = 0
    train, _ = loaders(n=256, batch=32)  # 8 batches per epoch: call 13 is epoch 2, batch 4
    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 4"):
        Trainer(3, precision="32", progress=False, log=False, callbacks=[Exploding()]).fit(
            tiny_cnn(), train, loss_fn=bad_loss)


def test_loop_does_not_sync_every_batch(monkeypatch):
    train, _ = loaders(n=640, batch=32)  # 20 batches per epoch
    calls = {"n": 0}
    original = torch.Tensor.item

    def counting_item(self):  # count the syncs the kit's loop makes (Adam's own CPU-side step.item() aside)
        if sys._getframe(1).f_code.co_filename.endswith(os.path.join("cifarkit", "training.py")):
            calls["n"] += 1
        return original(self)
    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    Trainer(2, precision="32", progress=False, log=False, sync_every=1000).fit(tiny_cnn(), train)
    assert calls["n"] <= 2 * 3, f"{calls['n']} host syncs for 40 batches"


def test_one_cycle_scheduler_steps_per_batch():
    train, _ = loaders(n=256, batch=32)
    model = tiny_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * len(train))
    Trainer(2, precision="32", progress=False, log=False).fit(model, train, optimizer=opt, scheduler=sched)
    assert sched.last_epoch == 2 * len(train)


def test_callbacks_see_and_extend_records():
    class Tag(Callback):
        def __init__(self):
            self.started = self.ended = False

        def on_fit_start(self, trainer, model):
            self.started = True

        def on_epoch_end(self, trainer, model, record):
            record["double_epoch"] = record["epoch"] * 2

        def on_fit_end(self, trainer, model):
            self.ended = True
    tag = Tag()
    history = Trainer(2, precision="32", progress=False, log=False, callbacks=[tag]).fit(tiny_cnn(), loaders()[0])
    assert tag.started and tag.ended and history["double_epoch"] == [2, 4]


def test_keyboard_interrupt_returns_finished_epochs():
    class StopInEpoch3(Callback):
        def on_epoch_end(self, trainer, model, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt
    trainer = Trainer(5, precision="32", progress=False, log=False, callbacks=[StopInEpoch3()])
    history = trainer.fit(tiny_cnn(), loaders()[0])
    assert trainer.interrupted and len(history) == 2


def test_history_round_trips_json_and_csv(tmp_path):
    h = History([{"epoch": 1, "train_loss": 2.0, "val_acc": 0.3}, {"epoch": 2, "train_loss": 1.5, "val_acc": 0.4}],
                meta={"data": "x"})
    back = history_from_json(history_to_json(h, tmp_path / "h.json"))
    assert back.records == h.records and back.meta == {"data": "x"}
    lines = history_to_csv(h, tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_acc" and lines[2] == "2,1.5,0.4"
    assert h.to_dict()["val_acc"] == [0.3, 0.4]
    with pytest.raises(KeyError):
        h["nope"]


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path):
    path = tmp_path / "ck.pt"
    atomic_save({"a": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.load(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


RESUME_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    from conftest import random_images, tiny_cnn
    from cifarkit import Checkpoint, TensorLoader, Trainer, seed_everything
    from cifarkit.callbacks import Callback

    mode, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    seed_everything(0)
    x, y = random_images(192)
    train = TensorLoader(x, y, 32, shuffle=True, augment=True, seed=0)
    val = TensorLoader(x, y, 96)
    model = tiny_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    class KillAfter(Callback):
        order = 200  # after the checkpoint is written
        def on_epoch_end(self, trainer, model, record):
            if mode == "kill" and record["epoch"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    trainer = Trainer(4, precision="32", progress=False, log=False,
                      callbacks=[Checkpoint(ckpt), KillAfter()])
    history = trainer.fit(model, train, val, optimizer=opt, scheduler=sched,
                          resume_from=ckpt if mode == "resume" else None)
    keep = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    json.dump({{"records": [{{k: r[k] for k in keep}} for r in history.records],
               "weights": [float(p.double().sum()) for p in model.state_dict().values()]}}, open(out, "w"))
""")


@pytest.mark.slow
def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    run = lambda *a: subprocess.run([sys.executable, str(script), *map(str, a)], env=env, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=300)
    full = run("full", tmp_path / "full.pt", tmp_path / "full.json")
    assert full.returncode == 0, full.stderr
    killed = run("kill", tmp_path / "ck.pt", tmp_path / "never.json")
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "ck.pt").is_file() and not (tmp_path / "never.json").exists()
    assert torch.load(tmp_path / "ck.pt", weights_only=False)["epoch"] == 2
    resumed = run("resume", tmp_path / "ck.pt", tmp_path / "resumed.json")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "full.json").read_text())
    b = json.loads((tmp_path / "resumed.json").read_text())
    assert len(b["records"]) == 4
    assert a == b, "the resumed run must end with exactly the metrics and weights of the uninterrupted one"


class Counter(Callback):
    """Counts epochs; its count is its checkpointed state."""

    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, trainer, model, record):
        self.epochs += 1

    def state_dict(self):
        return {"epochs": self.epochs}

    def load_state_dict(self, state):
        self.epochs = state["epochs"]


def test_callback_states_find_their_owner_when_callbacks_change_between_runs(tmp_path):
    from cifarkit.resume import Checkpoint
    train, val = loaders(n=64)
    first, second = Counter(), Counter()
    second.epochs = 10
    lookahead = Lookahead(total_steps=8, every=1)
    path = tmp_path / "ck.pt"
    Trainer(2, precision="32", progress=False, log=False,
            callbacks=[first, lookahead, second, Checkpoint(path)]).fit(tiny_cnn(), train, val)
    saved = torch.load(path, weights_only=False)["callbacks"]
    assert saved["Counter"] == {"epochs": 2} and saved["Counter#2"] == {"epochs": 12}
    assert saved["Lookahead"]["step"] == 4
    # resume with a new callback in front and the first counter gone: states go by name, not position
    newcomer, again, lookahead2 = StopAfter(1), Counter(), Lookahead(total_steps=8, every=1)
    trainer = Trainer(3, precision="32", progress=False, log=False, callbacks=[newcomer, lookahead2, again])
    with pytest.warns(UserWarning, match="does not have: Counter#2"):  # the second counter's state is left
        trainer.fit(tiny_cnn(), train, val, resume_from=path)
    assert lookahead2.step == 4 + 2 and again.epochs == 2 + 1
    # checkpoints written before states were keyed (a list in callback order) still load
    legacy = torch.load(path, weights_only=False)
    legacy["callbacks"] = [{"epochs": 5}, saved["Lookahead"]]
    torch.save(legacy, tmp_path / "legacy.pt")
    third, lookahead3 = Counter(), Lookahead(total_steps=8, every=1)
    Trainer(3, precision="32", progress=False, log=False,
            callbacks=[third, lookahead3]).fit(tiny_cnn(), train, val, resume_from=tmp_path / "legacy.pt")
    assert third.epochs == 5 + 1 and lookahead3.step == 4 + 2


def test_per_batch_hooks_run_only_where_a_callback_defines_one(monkeypatch):
    calls = []
    monkeypatch.setattr(Callback, "on_train_batch_end", lambda self, trainer, model: calls.append("base"))

    class PerBatch(Callback):
        def on_train_batch_end(self, trainer, model):
            calls.append("mine")

    class DuckTyped:  # not a Callback subclass
        def on_train_batch_end(self, trainer, model):
            calls.append("duck")

    train, val = loaders(n=64, batch=32)
    Trainer(1, precision="32", progress=False, log=False,
            callbacks=[Counter(), PerBatch(), DuckTyped()]).fit(tiny_cnn(), train, val)
    assert sorted(calls) == ["duck", "duck", "mine", "mine"]  # two batches; the inherited no-op skipped


def test_seed_everything_repeats_random_streams():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(TypeError):
        seed_everything("5")


def test_trainer_validates_arguments():
    with pytest.raises(ValueError):
        Trainer(-1)
    with pytest.raises(ValueError):
        Trainer(1, precision="fp8")
    with pytest.raises(ValueError):
        Trainer(1, scheduler_interval="sometimes")


def test_stop_after_ends_the_fit_early_and_only_counts_this_call():
    train, val = loaders(n=64)
    trainer = Trainer(5, precision="32", progress=False, log=False, callbacks=[StopAfter(2)])
    history = trainer.fit(tiny_cnn(), train, val)
    assert len(history) == 2 and trainer.should_stop and not trainer.interrupted
    history = trainer.fit(tiny_cnn(), train, val)  # a new fit counts from zero again
    assert len(history) == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            StopAfter(bad)


class PixelReader(nn.Module):
    """Outputs channel 0 of the pixel at row 1, column 1: easy to follow through TTA views."""

    def forward(self, x):
        return x[:, :1, 1, 1]


def test_tta_logits_weights_the_flipped_and_shifted_views():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    model = PixelReader()
    torch.testing.assert_close(tta_logits(model, x), x[:, :1, 1, 1])
    mirrored = x[:, :1, 1, 3]                                   # (1, 1) of the mirror image
    torch.testing.assert_close(tta_logits(model, x, flip=True), (x[:, :1, 1, 1] + mirrored) / 2)
    # moved by one pixel: (1, 1) shows (0, 0) in one view and (2, 2) in the other
    expected = x[:, :1, 1, 1] / 2 + (x[:, :1, 0, 0] + x[:, :1, 2, 2]) / 4
    torch.testing.assert_close(tta_logits(model, x, shift=1), expected)
    cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(tta_logits(model, cl, flip=True, shift=1), tta_logits(model, x, flip=True, shift=1))


def test_evaluate_with_shift_tta_covers_every_image():
    train, val = loaders(n=64)
    model = tiny_cnn()
    plain = evaluate(model, val, precision="32")
    shifted = evaluate(model, val, precision="32", tta_flip=True, tta_shift=2)
    assert shifted["n"] == plain["n"] == 64 and shifted["loss"] != plain["loss"]


def test_every_optimizer_step_reaches_on_train_batch_end():
    class Count(Callback):
        steps = 0

        def on_train_batch_end(self, trainer, model):
            self.steps += 1
    train, _ = loaders(n=96, batch=32)
    count = Count()
    Trainer(2, precision="32", progress=False, log=False, callbacks=[count]).fit(tiny_cnn(), train)
    assert count.steps == 2 * len(train) == 6


def test_lookahead_pulls_the_weights_back_to_a_slow_average():
    model = nn.Linear(2, 1, bias=False)
    look = Lookahead(total_steps=4, every=2, decay=0.5)
    look.on_fit_start(None, model)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    look.on_train_batch_end(None, model)                       # step 1: nothing happens
    torch.testing.assert_close(model.weight, start + 1.0)
    look.on_train_batch_end(None, model)                       # step 2: decay 0.5 * (2/4)**3
    d = 0.5 * 0.5 ** 3
    torch.testing.assert_close(model.weight, d * start + (1 - d) * (start + 1.0))
    torch.testing.assert_close(look.slow["weight"], model.weight.detach())
    again = Lookahead(total_steps=4, every=2, decay=0.5)
    again.load_state_dict(look.state_dict())
    again.on_fit_start(None, nn.Linear(2, 1, bias=False))     # a resumed copy keeps its slow weights
    assert again.step == 2 and torch.equal(again.slow["weight"], look.slow["weight"])
    for bad in [dict(total_steps=0), dict(total_steps=4, every=0), dict(total_steps=4, decay=1.0)]:
        with pytest.raises(ValueError):
            Lookahead(**bad)


def test_lookahead_covers_batchnorm_statistics_but_not_the_step_counter():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    look = Lookahead(total_steps=1, every=1, decay=0.5)
    look.on_fit_start(None, model)
    assert set(look.slow) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"}
    model(torch.randn(8, 3, 6, 6))                               # moves the running statistics
    moved = model[1].running_mean.clone()
    look.on_train_batch_end(None, model)
    torch.testing.assert_close(model[1].running_mean, moved / 2)


def _temp(folder, name):
    path = folder / name
    path.write_bytes(b"partial checkpoint")
    return path


def test_atomic_save_removes_the_orphans_of_killed_saves_and_nothing_else(tmp_path):
    import time
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid no longer exists: a save it left behind is an orphan
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _temp(tmp_path, f".ck.pt.{finished.pid}-abc123.tmp")
        live = _temp(tmp_path, f".ck.pt.{running.pid}-def456.tmp")  # a save still in progress elsewhere
        old = _temp(tmp_path, ".ck.pt.k3j4h5g6.tmp")  # the earlier naming, without a pid
        os.utime(old, (time.time() - 7200,) * 2)
        recent_old_style = _temp(tmp_path, ".ck.pt.a1b2c3d4.tmp")
        other_target = _temp(tmp_path, f".ck.pt.x.pt.{finished.pid}-abc123.tmp")
        atomic_save({"a": 1}, tmp_path / "ck.pt")
        left = {p.name for p in tmp_path.iterdir()}
        assert not dead.exists() and not old.exists()
        assert {live.name, recent_old_style.name, other_target.name, "ck.pt"} == left
    finally:
        running.kill()
        running.wait()


def test_atomic_save_writes_through_a_unique_temp_file_named_after_the_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(os.path.basename(src)), real_replace(src, dst)))
    atomic_save({"a": 1}, tmp_path / "ck.pt")
    atomic_save({"a": 2}, tmp_path / "ck.pt")
    assert len(set(seen)) == 2 and all(name.startswith(f".ck.pt.{os.getpid()}-") for name in seen)
    assert torch.load(tmp_path / "ck.pt") == {"a": 2}


def _legacy(checkpoint: dict) -> dict:
    """The layout of checkpoints written before format 2: NumPy's state as get_state()'s tuple."""
    import numpy as np
    old = {k: v for k, v in checkpoint.items() if k not in ("format", "optimizer_class", "scheduler_class")}
    state = checkpoint["rng"]["numpy"]
    old["rng"] = {**checkpoint["rng"], "numpy": (state["kind"], state["keys"].numpy().astype(np.uint32),
                                                 state["pos"], state["has_gauss"], state["cached_gaussian"])}
    return old


def test_resume_loads_safely_both_layouts_and_restores_every_random_state(tmp_path):
    import random as pyrandom

    import numpy as np
    from cifarkit.resume import Checkpoint
    train, val = loaders(n=64)
    path = tmp_path / "ck.pt"
    Trainer(2, precision="32", progress=False, log=False, callbacks=[Checkpoint(path)]).fit(tiny_cnn(), train, val)
    after_save = (np.random.rand(), pyrandom.random(), torch.rand(1))
    saved = torch.load(path, weights_only=False)
    assert saved["optimizer_class"] == "Adam" and isinstance(saved["rng"]["numpy"]["keys"], torch.Tensor)
    torch.save(_legacy(saved), tmp_path / "legacy.pt")
    for name in ("ck.pt", "legacy.pt"):
        np.random.seed(123), pyrandom.seed(123), torch.manual_seed(123)
        trainer = Trainer(2, precision="32", progress=False, log=False)
        trainer.fit(tiny_cnn(), train, val, resume_from=tmp_path / name)  # nothing left to train
        assert trainer.epoch == 2 and len(trainer.history) == 2
        assert (np.random.rand(), pyrandom.random(), torch.rand(1)) == after_save, name


def test_a_checkpoint_the_safe_path_refuses_needs_the_explicit_opt_in(tmp_path):
    from fractions import Fraction

    from cifarkit.resume import Checkpoint

    class Noted(Counter):
        def state_dict(self):  # a class the safe loader does not know
            return {"epochs": self.epochs, "share": Fraction(1, 3)}
    train, _ = loaders(n=64)
    path = tmp_path / "ck.pt"
    Trainer(1, precision="32", progress=False, log=False, callbacks=[Noted(), Checkpoint(path)]).fit(tiny_cnn(), train)
    again = Noted()
    with pytest.raises(ValueError, match="trust_checkpoint=True"):
        Trainer(2, precision="32", progress=False, log=False, callbacks=[again]).fit(
            tiny_cnn(), train, resume_from=path)
    assert again.epochs == 0
    Trainer(2, precision="32", progress=False, log=False, callbacks=[again]).fit(
        tiny_cnn(), train, resume_from=path, trust_checkpoint=True)
    assert again.epochs == 2


def test_hooks_run_in_loop_order_and_after_backward_sees_the_gradients_before_the_step():
    events = []

    class Spy(Callback):
        def on_epoch_start(self, trainer, model):
            events.append(("epoch_start", trainer.epoch))

        def on_after_backward(self, trainer, model):
            w = model[0].weight if isinstance(model, nn.Sequential) else next(model.parameters())
            events.append(("after_backward", w.grad is not None, torch.equal(w, self.before)))

        def on_train_batch_end(self, trainer, model):
            w = next(model.parameters())
            events.append(("batch_end", trainer.batch, not torch.equal(w, self.before)))
            self.before = w.detach().clone()

        def on_fit_start(self, trainer, model):
            self.before = next(model.parameters()).detach().clone()

    train, _ = loaders(n=64, batch=32)
    Trainer(2, precision="32", progress=False, log=False, callbacks=[Spy()]).fit(tiny_cnn(), train)
    assert [e[0] for e in events] == ["epoch_start", "after_backward", "batch_end", "after_backward", "batch_end"] * 2
    assert [e for e in events if e[0] == "epoch_start"] == [("epoch_start", 1), ("epoch_start", 2)]
    # after backward: gradients exist and the weights have not moved yet; after the step they have
    assert all(e[1] and e[2] for e in events if e[0] == "after_backward")
    assert [e[1] for e in events if e[0] == "batch_end"] == [0, 1, 0, 1] and all(e[2] for e in events if e[0] == "batch_end")


def test_progress_bar_and_epoch_log_are_callbacks_the_trainer_adds(capsys):
    from cifarkit.callbacks import EpochLog, ProgressBar

    assert [type(c) for c in Trainer(1, progress=False, log=False).callbacks] == []
    kinds = [type(c) for c in Trainer(1, progress=True, log=True, callbacks=[Counter()]).callbacks]
    assert kinds == [ProgressBar, Counter, EpochLog], "bar first, the log after every other callback"
    with pytest.raises(ValueError, match="progress must be True, False or 'auto', got 'yes'"):
        Trainer(1, progress="yes")

    class AddsKey(Callback):
        def on_epoch_end(self, trainer, model, record):
            record["sparsity"] = 0.25

    train, _ = loaders(n=64, batch=32)
    Trainer(1, precision="32", progress=False, callbacks=[AddsKey()]).fit(tiny_cnn(), train)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Training on ") and out[1].startswith("epoch 1/1  train_loss ")
    assert out[1].endswith("sparsity 0.25"), "the log runs after the callbacks that extend the record"


@pytest.mark.parametrize("summed", [False, True])
def test_micro_batches_give_the_whole_batch_gradient_loss_and_accuracy(summed):
    from cifarkit.recipes import SummedCrossEntropy

    grads = []

    class Grab(Callback):
        def on_after_backward(self, trainer, model):
            grads.append([p.grad.clone() for p in model.parameters()])

    def run(micro):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))  # no BatchNorm: exact equality
        train, _ = loaders(n=64, batch=32)
        loss_fn = SummedCrossEntropy(0.1) if summed else nn.CrossEntropyLoss(label_smoothing=0.1)
        hist = Trainer(1, precision="32", progress=False, log=False, callbacks=[Grab()], micro_batch=micro).fit(
            model, train, optimizer=torch.optim.SGD(model.parameters(), lr=0.01 if summed else 0.5), loss_fn=loss_fn)
        return hist, model

    whole, model_a = run(None)
    split, model_b = run(10)  # chunks of 10, 10, 10 and 2: the uneven last one must be weighted by its size
    assert len(grads) == 4
    for a, b in zip(grads[0] + grads[1], grads[2] + grads[3]):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(g, torch.zeros_like(g)) for g in grads[0])
    assert split["train_loss"][0] == pytest.approx(whole["train_loss"][0], rel=1e-5)
    assert split["train_acc"] == whole["train_acc"]
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_micro_batch_must_be_a_positive_int():
    with pytest.raises(ValueError, match="micro_batch"):
        Trainer(1, micro_batch=0)


def test_progressive_resize_trains_the_listed_epochs_on_smaller_images_and_restores_the_size():
    from cifarkit.loader import ProgressiveResize

    seen = []

    class Sizes(nn.Module):  # records the side of every training batch, then a global-pool classifier
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            if self.training:
                seen.append(x.shape[-1])
            return self.fc(self.conv(x).amax((2, 3)))

    train, val = loaders(n=64, batch=32)
    Trainer(3, precision="32", progress=False, log=False, callbacks=[ProgressiveResize((16, 24))]).fit(
        Sizes(), train, val)
    assert seen == [16, 16, 24, 24, 32, 32], "epoch 1 at 16, epoch 2 at 24, then the loader's own size"
    assert train.resize is None, "the loader is left as it was"
    # a downsized batch is the antialiased (averaging) resize, not every other pixel
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    x[..., ::2] = 255  # vertical stripes one pixel wide: averaging gives flat grey, sampling gives stripes
    small = TensorLoader(x, torch.zeros(1, dtype=torch.long), 1, normalize=False, resize=16).transform(x)
    inner = small[..., 1:-1]  # the border columns average over fewer pixels
    assert inner.std() < 0.01 and abs(inner.mean() - 0.5) < 0.01
    with pytest.raises(ValueError, match=r"sizes must be one or more positive ints .*got \(0,\)"):
        ProgressiveResize((0,))


@pytest.mark.parametrize("steps", [2, 3, 8])
def test_history_lr_is_the_rate_of_the_epochs_last_step(steps):
    """A one-cycle schedule's last step uses its minimum; the rate the scheduler sets after it, for a
    step that never comes, is past the schedule's end (and climbs back for short schedules)."""
    x, y = random_images(16 * steps)
    model = tiny_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps, pct_start=0.3 if steps > 2 else 0.25)
    used = []

    class Spy(Callback):
        def on_after_backward(self, trainer, model):
            used.append(opt.param_groups[0]["lr"])

    history = Trainer(1, precision="32", progress=False, log=False, callbacks=[Spy()]).fit(
        model, TensorLoader(x, y, 16), optimizer=opt, scheduler=sched)
    assert len(used) == steps and history["lr"] == [used[-1]]
    assert used[-1] < 1e-4 * 0.1  # one-cycle ends at max_lr / (div_factor * final_div_factor)
