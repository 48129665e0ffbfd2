"""The speedrun recipes: `airbench94-muon` (the record recipe's settings in the kit's code) and
`speedrun` (that recipe made for a CPU): each ingredient does what it claims, and can be switched off."""
import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from cifarkit.callbacks import Callback, StopAfter
from cifarkit.loader import TensorLoader
from cifarkit.models import SpeedrunNet, SpeedrunStage
from cifarkit.optim import MuonSGD, newton_schulz
from cifarkit import recipes
from cifarkit.recipes import V3_SGD_LR, SummedCrossEntropy, get_recipe, train_recipe
from cifarkit.synthetic import synthetic_cifar

sys.path.insert(0, str(REPO / "bench"))
import speedrun_ablation  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"widths": (8, 16), "residual": False, "bn_eps": 1e-12, "logit_scale": None}
FAST = dict(precision="32", progress=False, log=False, eval_batch_size=128)


def tiny_v3(**changes):
    return get_recipe("airbench94-muon", model_kwargs=TINY, **changes)


def one_step(recipe, model=None, seed=0):
    """A model of `recipe` and its optimizer after one training step on random images."""
    torch.manual_seed(seed)
    model = model or recipe.build_model()
    model.init_whitening(torch.randn(64, 3, 32, 32))
    opt = recipe.build_optimizer(model)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    recipe.loss_fn()(model(x), y).backward()
    opt.step()
    return model, opt


# --------------------------------------------------------------------------- data and loss

def test_alternating_flip_shows_each_image_flipped_in_exactly_one_of_two_epochs():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    kw = dict(batch_size=7, shuffle=True, augment=True, crop_padding=0, normalize=False, num_classes=None)
    loader = TensorLoader(x, torch.arange(40), alternating_flip=True, seed=3, **kw)

    def flipped_per_image(ld):
        seen = {}
        for xb, yb in ld:
            for img, i in zip(xb, yb.tolist()):
                plain, mirror = x[i].float() / 255, x[i].flip(2).float() / 255
                assert torch.equal(img, plain) != torch.equal(img, mirror)
                seen[i] = torch.equal(img, mirror)
        assert sorted(seen) == list(range(40))  # every image once per epoch
        return seen

    first, second, third = (flipped_per_image(loader) for _ in range(3))
    assert all(first[i] != second[i] for i in range(40))  # each image flipped in exactly one of the two
    assert first == third
    assert 10 <= sum(first.values()) <= 30  # a random half, not all or none
    resumed = TensorLoader(x, torch.arange(40), alternating_flip=True, seed=99, **kw)
    resumed.load_state_dict(loader.state_dict())  # after 3 epochs: the 4th flips like the 2nd
    assert flipped_per_image(resumed) == second
    random_loader = TensorLoader(x, torch.arange(40), seed=3, **kw)
    a, b = flipped_per_image(random_loader), flipped_per_image(random_loader)
    assert any(a[i] == b[i] for i in range(40))  # random flips do not alternate
    with pytest.raises(ValueError, match="alternating_flip"):
        TensorLoader(x, torch.arange(40), alternating_flip=True, num_classes=None)


def test_summed_loss_has_the_gradient_of_the_sum_and_reports_the_mean():
    torch.manual_seed(1)
    logits, y = torch.randn(50, 10, requires_grad=True), torch.randint(0, 10, (50,))
    loss = SummedCrossEntropy(label_smoothing=0.2)(logits, y)
    (grad,) = torch.autograd.grad(loss, logits)
    mean = F.cross_entropy(logits, y, label_smoothing=0.2)
    summed = F.cross_entropy(logits, y, label_smoothing=0.2, reduction="sum")
    torch.testing.assert_close(summed, 50 * mean)
    torch.testing.assert_close(grad, torch.autograd.grad(summed, logits)[0])
    torch.testing.assert_close(grad, 50 * torch.autograd.grad(mean, logits)[0])
    assert loss.item() == pytest.approx(mean.item())  # the logged value stays per image
    with torch.inference_mode():
        assert SummedCrossEntropy(0.2)(logits, y).item() == pytest.approx(mean.item())
    assert isinstance(tiny_v3().loss_fn(), SummedCrossEntropy)
    assert isinstance(tiny_v3(sum_loss=False).loss_fn(), torch.nn.CrossEntropyLoss)


def test_linear_schedule_decays_to_zero_over_the_run_and_the_stem_bias_over_its_epochs():
    recipe = tiny_v3(epochs=4, whiten_bias_epochs=2)
    opt = recipe.build_optimizer(recipe.build_model())
    sched = recipe.build_scheduler(opt, steps_per_epoch=5)  # 20 steps; stem bias: 10
    names = [g["name"] for g in opt.param_groups]
    assert names == ["filters", "linear", "biases", "whiten_bias"]
    peak = [g["lr"] for g in opt.param_groups]
    factors = []
    for _ in range(20):
        factors.append([g["lr"] / p for g, p in zip(opt.param_groups, peak)])
        opt.step()
        sched.step()
    main = [f[0] for f in factors]
    assert all(math.isclose(f, 1 - s / 20) for s, f in enumerate(main))
    assert all(math.isclose(f[0], f[1]) and math.isclose(f[0], f[2]) for f in factors)
    stem = [f[3] for f in factors]
    assert all(math.isclose(f, 1 - s / 10) for s, f in enumerate(stem[:10])) and stem[10:] == [0.0] * 10
    assert all(g["lr"] == 0.0 for g in opt.param_groups)


# --------------------------------------------------------------------------- model

def test_v3_blocks_are_plain_and_the_head_divides_by_the_width():
    torch.manual_seed(2)
    stage = SpeedrunStage(4, 6, residual=False, bn_eps=1e-12).eval()
    x = torch.randn(2, 4, 8, 8)
    y = F.gelu(stage.bn(stage.pool(stage.conv(x))))
    torch.testing.assert_close(stage(x), F.gelu(stage.res_bn(stage.res_conv(y))))
    assert stage.bn.eps == 1e-12 and stage.bn.momentum == 0.4
    net = get_recipe("airbench94-muon").build_model()
    assert net.logit_scale == 1 / 256 and net.fc.bias is None
    assert sum(p.numel() for p in net.parameters()) == 1_972_792
    assert all(not s.residual for s in net.stages) and all(s.residual for s in SpeedrunNet().stages)
    with pytest.raises(ValueError, match="bn_eps"):
        SpeedrunNet(bn_eps=0.0)



def test_airbench_initialisation_options_rescale_the_head_and_keep_torchs_stem_bias():
    torch.manual_seed(5)
    default = SpeedrunNet((8, 16))
    torch.manual_seed(5)
    airbench = SpeedrunNet((8, 16), head_init_std=1.0, whiten_bias_init="uniform")
    assert torch.equal(default.whiten.bias, torch.zeros(24))
    bound = 1 / math.sqrt(3 * 2 * 2)                                   # torch's conv bias: +-1/sqrt(fan_in)
    assert airbench.whiten.bias.abs().max() <= bound and airbench.whiten.bias.abs().min() > 0
    assert 0.02 < default.fc.weight.std() < 0.2                      # torch's default: 1/sqrt(3 x 16) = 0.14
    torch.testing.assert_close(airbench.fc.weight.std(), torch.tensor(1.0))
    # the same directions, only rescaled; every other weight is the same (same seed, same draws)
    torch.testing.assert_close(airbench.fc.weight / airbench.fc.weight.std(), default.fc.weight / default.fc.weight.std())
    torch.testing.assert_close(airbench.stages[0].conv.weight, default.stages[0].conv.weight)
    for bad, match in [(dict(head_init_std=0.0), "head_init_std"), (dict(head_init_std=-1), "head_init_std"),
                       (dict(whiten_bias_init="ones"), "whiten_bias_init")]:
        with pytest.raises(ValueError, match=match):
            SpeedrunNet((8, 16), **bad)
    # the recipe's summary names them, so a recorded run with them never passes for the recipe's own
    plain = get_recipe("speedrun-torch-init")
    changed = plain.with_model_kwargs(head_init_std=1.0, whiten_bias_init="uniform")
    assert "initialised" not in plain.summary()
    assert "head initialised at std 1, whitening bias initialised uniform" in changed.summary()
    net = changed.build_model()
    assert net.fc.weight.std().item() == pytest.approx(1.0) and net.whiten.bias.abs().sum() > 0

def test_the_speedrun_starts_as_the_record_recipe_does_and_its_predecessor_as_torch_does():
    """`speedrun` and `airbench94-muon` take the record's initialisation; `speedrun-torch-init` is the
    speedrun before it, the same in every other field (so the recorded runs of each stay reproducible)."""
    from cifarkit.recipes import AIRBENCH_INIT

    new, old = get_recipe("speedrun"), get_recipe("speedrun-torch-init")
    for recipe in (new, get_recipe("airbench94-muon")):
        assert AIRBENCH_INIT.items() <= recipe.model_kwargs.items()
    assert not set(AIRBENCH_INIT) & set(old.model_kwargs)
    assert old.replace(name="speedrun", description=new.description).with_model_kwargs(**AIRBENCH_INIT) == new
    torch.manual_seed(0)
    started = new.build_model()
    torch.manual_seed(0)
    before = old.build_model()
    assert started.fc.weight.std().item() == pytest.approx(1.0) and before.fc.weight.std().item() < 0.1
    assert started.whiten.bias.abs().max() > 0 and before.whiten.bias.abs().max() == 0
    # the same draws: only the head's scale and the stem's bias differ, so runs pair by seed
    torch.testing.assert_close(started.stages[2].res_conv.weight, before.stages[2].res_conv.weight)
    torch.testing.assert_close(started.fc.weight / started.fc.weight.std(), before.fc.weight / before.fc.weight.std())


def test_frozen_bn_weights_stay_at_one_after_a_training_step_and_learn_when_unfrozen():
    model, _ = one_step(tiny_v3())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in bns)
    assert all(not torch.equal(bn.bias, torch.zeros_like(bn.bias)) for bn in bns)  # the shifts learn
    model, opt = one_step(tiny_v3(freeze_bn_weights=False))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in bns)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(bn.weight) in trained for bn in bns)


def test_whitening_bias_stops_training_after_its_epochs(tmp_path):
    class StemBias(Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, trainer, model, record):
            self.seen.append(model.whiten.bias.detach().clone())

    data = synthetic_cifar(256, 64, seed=0)
    cb = StemBias()
    train_recipe(tiny_v3(epochs=5, batch_size=64), data, callbacks=[cb], **FAST)
    bias = [torch.zeros_like(cb.seen[0])] + cb.seen  # it starts at zero
    assert all(not torch.equal(bias[e], bias[e + 1]) for e in range(3))  # epochs 1-3 move it
    assert torch.equal(bias[3], bias[4]) and torch.equal(bias[4], bias[5])  # epochs 4-5 do not


# --------------------------------------------------------------------------- optimizer

def test_muon_trains_only_the_conv_filters_and_keeps_them_finite_and_normalised():
    recipe = tiny_v3()
    torch.manual_seed(3)
    model = recipe.build_model()
    opt = recipe.build_optimizer(model)
    assert isinstance(opt, MuonSGD)
    orth = [g for g in opt.param_groups if g["orthogonalize"]]
    filters = [p for p in model.parameters() if p.dim() == 4 and p.requires_grad]
    assert len(orth) == 1 and [id(p) for p in orth[0]["params"]] == [id(p) for p in filters]
    assert id(model.whiten.weight) not in {id(p) for p in filters}  # the whitening filters stay frozen
    assert (orth[0]["lr"], orth[0]["momentum"], orth[0]["ns_steps"], orth[0]["weight_decay"]) == (0.24, 0.6, 3, 0.0)
    sgd = {g["name"]: g for g in opt.param_groups if not g["orthogonalize"]}
    assert math.isclose(sgd["linear"]["lr"], 0.67) and math.isclose(sgd["biases"]["lr"], 0.053)
    assert all(math.isclose(g["lr"] * g["weight_decay"], 2e-6 * 2000) for g in sgd.values())
    x = torch.randn(32, 3, 32, 32)
    for step in range(5):
        opt.zero_grad()
        recipe.loss_fn()(model(x * (step + 1) * 100), torch.randint(0, 10, (32,))).backward()  # wild inputs
        opt.step()
    for p in filters:
        assert torch.isfinite(p).all()
        assert p.norm().item() == pytest.approx(len(p) ** 0.5, rel=0.5)  # renormalised each step


def test_muon_sgd_groups_match_torch_sgd_and_its_muon_step_matches_torch_muon():
    torch.manual_seed(4)
    w = torch.randn(6, 5)
    grads = [torch.randn(6, 5) for _ in range(3)]
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    ours = MuonSGD([a], lr=0.1, momentum=0.85, weight_decay=0.01)
    ref = torch.optim.SGD([b], lr=0.1, momentum=0.85, weight_decay=0.01, nesterov=True)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(a, b)
    if not hasattr(torch.optim, "Muon"):  # make test-oldest: torch.optim.Muon arrived in torch 2.9
        pytest.skip(f"torch {torch.__version__} has no torch.optim.Muon to compare the Muon step with")
    for rows, cols in ((5, 6), (6, 5)):  # a wide matrix like every conv filter, then a tall one
        c, d = (torch.nn.Parameter(w.reshape(rows, cols).clone()) for _ in range(2))
        ours = MuonSGD([c], lr=0.1, momentum=0.6, orthogonalize=True, renormalize=False, ns_steps=3)
        ref = torch.optim.Muon([d], lr=0.1, momentum=0.6, nesterov=True, weight_decay=0.0, ns_steps=3)
        for g in grads:  # the momentum conventions differ by a factor the orthogonalisation removes
            c.grad, d.grad = g.reshape(rows, cols).clone(), g.reshape(rows, cols).clone()
            ours.step()
            ref.step()
        # torch's default adjust_lr_fn scales the lr by sqrt(max(1, rows/cols)): 1 when wide
        scale = max(1.0, rows / cols) ** 0.5
        moved_ours, moved_torch = c - w.reshape(rows, cols), d - w.reshape(rows, cols)
        torch.testing.assert_close(moved_torch, scale * moved_ours, atol=0.1 * 0.05, rtol=0)  # bf16 rounding
    with pytest.raises(ValueError, match="orthogonalize"):
        MuonSGD([torch.nn.Parameter(torch.ones(3))], orthogonalize=True)
    with pytest.raises(ValueError, match="momentum"):
        MuonSGD([c], momentum=1.0)


def test_newton_schulz_pushes_the_singular_values_toward_one():
    torch.manual_seed(5)
    m = torch.randn(16, 40) @ torch.diag(torch.logspace(-1, 1, 40))  # badly conditioned
    s = torch.linalg.svdvals(newton_schulz(m, steps=5, dtype=torch.float32))
    assert s.min() > 0.5 and s.max() < 1.3
    tall = newton_schulz(m.T, steps=5, dtype=torch.float32)
    assert tall.shape == (40, 16)
    torch.testing.assert_close(tall, newton_schulz(m, 5, torch.float32).T)


# --------------------------------------------------------------------------- recipe

def test_each_ablation_switch_changes_what_it_claims():
    base = tiny_v3()
    sgd = tiny_v3(muon=False).build_optimizer(tiny_v3().build_model())
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["name"] == "filters"
    assert sgd.param_groups[0]["lr"] == V3_SGD_LR and sgd.param_groups[0]["momentum"] == 0.85
    data = synthetic_cifar(64, 16, seed=0)
    assert base.train_loader(data).alternating_flip
    assert not tiny_v3(alternating_flip=False).train_loader(data).alternating_flip
    frozen, learnable = base.build_model(), tiny_v3(freeze_bn_weights=False).build_model()
    assert not any(m.weight.requires_grad for m in frozen.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.weight.requires_grad for m in learnable.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stem = tiny_v3(whitening=False).build_model()
    before = stem.whiten.weight.detach().clone()
    stem.init_whitening(torch.randn(32, 3, 32, 32))
    assert stem.whiten.weight.requires_grad and torch.equal(stem.whiten.weight, before)
    assert stem.whiten.weight.shape == base.build_model().whiten.weight.shape
    assert base.tta == "flip + shift 1" and tiny_v3(tta_flip=False, tta_shift=0).tta == ""
    assert tiny_v3(label_smoothing=0.0).loss_fn().mean.label_smoothing == 0.0
    summary = get_recipe("airbench94-muon").summary()
    for words in ("muon lr 0.24", "bias lr 0.053", "head lr 0.67", "linear schedule", "batch 2000",
                  "8 epochs", "summed", "alternating flip", "whitening bias trained 3 epochs", "TTA flip + shift 1"):
        assert words in summary
    assert "learnable stem" in tiny_v3(whitening=False).summary()
    # the bench script's variants each change exactly the field(s) they name, from the baseline
    for variant, (changes, _) in speedrun_ablation.VARIANTS.items():
        changed = get_recipe(speedrun_ablation.RECIPE, **changes)
        diff = {f for f in changes if getattr(changed, f) != getattr(get_recipe(speedrun_ablation.RECIPE), f)}
        assert diff == set(changes), variant


@pytest.mark.parametrize("field,bad", [
    ("muon", "yes"), ("muon_lr", 0.0), ("muon_momentum", 1.0), ("muon_steps", 0), ("head_lr_scale", -1.0),
    ("sum_loss", 1), ("whiten_bias_epochs", 0), ("alternating_flip", None), ("freeze_bn_weights", "no"),
    ("whitening", 0), ("compile", "on"), ("momentum", 1.5), ("weight_decay", -1e-4), ("schedule", "cosine"),
    ("lookahead", "x"), ("model_kwargs", [1]), ("name", 3),
])
def test_recipe_refuses_a_bad_field_naming_it(field, bad):
    with pytest.raises(ValueError, match=field) as info:
        get_recipe("airbench94-muon").replace(**{field: bad})
    assert "\n" not in str(info.value)


def test_recipe_refuses_contradictory_settings_naming_the_field():
    for changes, field in [(dict(optimizer="adam"), "muon"), (dict(augment=False), "alternating_flip"),
                           (dict(schedule="one-cycle"), "whiten_bias_epochs"),
                           (dict(model_kwargs={"whitening": False}), "whitening")]:
        with pytest.raises(ValueError, match=field):
            get_recipe("airbench94-muon", **changes)
    with pytest.raises(ValueError, match="whitening"):
        get_recipe("gated-seed", whitening=False)


def test_v3_keeps_the_old_recipes_unchanged():
    old = get_recipe("speedrun-v2")
    opt = old.build_optimizer(SpeedrunNet((8, 16)))
    assert type(opt) is torch.optim.SGD and [g["name"] for g in opt.param_groups] == ["filters+linear", "biases"]
    assert not old.muon and not old.sum_loss and not old.alternating_flip and old.whiten_bias_epochs is None
    small = tiny_v3().with_batch_size(100)
    assert small.lr == tiny_v3().lr and small.muon_lr == 0.24  # per-image rates stay
    assert small.lr * small.weight_decay == pytest.approx(2e-6 * 100)


# --------------------------------------------------------------------------- training

def test_one_epoch_tiny_run_trains_above_chance():
    data = synthetic_cifar(2000, 500, seed=0)
    recipe = get_recipe("airbench94-muon", epochs=1, batch_size=100, model_kwargs={**TINY, "widths": (16, 32)})
    result = train_recipe(recipe, data, **FAST)
    assert result.test["acc"] > 0.2 and result.test_tta["acc"] > 0.2  # chance: 0.1
    assert result.history["train_loss"][0] < 2.5  # the mean, not the sum, is logged


def test_resume_from_a_checkpoint_reproduces_an_uninterrupted_run(tmp_path):
    data = synthetic_cifar(256, 128, seed=0)
    recipe = tiny_v3(epochs=4, batch_size=64, whiten_bias_epochs=2)
    whole = train_recipe(recipe, data, **FAST)
    ckpt = tmp_path / "v3.pt"
    first = train_recipe(recipe, data, checkpoint=ckpt, callbacks=[StopAfter(3)], **FAST)  # odd: flip state matters
    assert len(first.history) == 3
    resumed = train_recipe(recipe, data, checkpoint=ckpt, **FAST)
    assert resumed.history["train_loss"] == whole.history["train_loss"]
    assert resumed.history["val_acc"] == whole.history["val_acc"]
    assert resumed.test == whole.test and resumed.test_tta == whole.test_tta
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_ablation_script_smoke_run_writes_its_table(tmp_path, monkeypatch):
    data = synthetic_cifar(128, 64, seed=0)
    monkeypatch.setattr(speedrun_ablation.accuracy.ck, "load_data", lambda *a, **k: data)
    monkeypatch.setitem(speedrun_ablation.VARIANTS, "speedrun", ({"model_kwargs": TINY, "batch_size": 64}, "base"))
    monkeypatch.setitem(speedrun_ablation.VARIANTS, "no-tta", ({"model_kwargs": TINY, "batch_size": 64,
                                                                "tta_flip": False, "tta_shift": 0}, "no TTA"))
    for name in [v for v in speedrun_ablation.VARIANTS if v not in ("speedrun", "no-tta")]:
        monkeypatch.delitem(speedrun_ablation.VARIANTS, name)
    out = tmp_path / "ablation"
    argv = ["--out", str(out), "--epochs", "1", "--source", "synthetic", "--allow-synthetic"]
    lines = speedrun_ablation.main(argv)
    assert (out / "speedrun" / "checkpoint.pt").exists() and (out / "table.md").exists()
    rows = [line for line in lines if line.startswith("| speedrun ") or line.startswith("| no-tta ")]
    assert len(rows) == 2 and "same training" in rows[1] and "| - |" in rows[1]
    assert speedrun_ablation.main(argv) == lines  # finished variants are kept, not trained again
    # --record keeps the finished table in a tracked file, which bench/run_all.py tables in results.md
    import run_all
    speedrun_ablation.main(argv + ["--table", "--record", str(tmp_path / "speedrun_record.json")])
    kept = json.loads((tmp_path / "speedrun_record.json").read_text())
    assert kept["ablation"]["table"] == lines and "--record" in kept["ablation"]["command"]
    assert kept["ablation"]["recipe"] == "speedrun"  # the table names the recipe it measured
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    section = run_all.speedrun_section()
    assert section[0].startswith("## 7. Speedrun") and rows[0] in section and "timing" not in kept
    with pytest.raises(SystemExit, match="other settings"):
        speedrun_ablation.main(argv[:2] + ["--epochs", "2"] + argv[4:])
    # a folder trained before the recipe itself changed is refused, not resumed as the new recipe
    monkeypatch.setitem(recipes.RECIPES, "speedrun", get_recipe("speedrun", label_smoothing=0.1))
    with pytest.raises(SystemExit, match="recipe_summary"):
        speedrun_ablation.main(argv)


def test_speedrun_is_the_record_recipe_with_two_cpu_changes_and_no_label_smoothing():
    fast, peer = get_recipe("speedrun"), get_recipe("airbench94-muon")
    assert (fast.batch_size, fast.micro_batch, fast.image_sizes, fast.epochs) == (500, None, (24, 24, 28), 8)
    assert fast.muon_lr == pytest.approx(peer.muon_lr * math.sqrt(500 / 2000)), "Muon: the square-root rule"
    assert fast.lr == peer.lr and fast.lr * fast.weight_decay == pytest.approx(2e-6 * 500), "per-image SGD units"
    same = {f: getattr(fast, f) == getattr(peer, f) for f in (
        "muon", "alternating_flip", "freeze_bn_weights", "whitening", "tta_flip", "tta_shift",
        "sum_loss", "whiten_bias_epochs", "schedule", "model_kwargs", "bias_lr_scale", "head_lr_scale")}
    assert all(same.values()), same
    assert (fast.label_smoothing, peer.label_smoothing) == (0.0, 0.2), "measured again at batch 500: none"
    assert "label smoothing" not in fast.summary() and "label smoothing 0.2" in peer.summary()
    summary = fast.summary()
    assert "batch 500" in summary and "progressive resizing 24-24-28 px, then full size" in summary
    assert "micro-batches" not in summary, "no chunks, no words"
    assert "micro-batches of 500" in get_recipe("speedrun", batch_size=1000, micro_batch=500).summary()
    assert speedrun_ablation.YARDSTICK == "speedrun-v2"


@pytest.mark.parametrize("bad", [(0,), (24, -1), 24, "24", (24.5,)])
def test_recipe_refuses_bad_image_sizes_naming_the_field(bad):
    with pytest.raises(ValueError, match="image_sizes") as info:
        get_recipe("speedrun", image_sizes=bad)
    assert "\n" not in str(info.value)


def test_speedrun_trains_its_first_epochs_on_smaller_images_in_micro_batches():
    calls = []

    class Spy(Callback):
        def on_train_batch_end(self, trainer, model):
            calls.append(trainer.train_loader.resize)

    sides = []
    recipe = get_recipe("speedrun", epochs=3, batch_size=64, micro_batch=32, image_sizes=(16, 24),
                        model_kwargs=TINY)
    from cifarkit import recipes as rmod  # train_recipe builds its own model: spy on it through MODELS
    build = rmod.MODELS["speedrun"]

    def spied(r):
        net = build(r)
        net.register_forward_pre_hook(lambda m, args: sides.append(tuple(args[0].shape)) if m.training else None)
        return net

    rmod.MODELS["speedrun"] = spied
    try:
        result = train_recipe(recipe, synthetic_cifar(128, 64, seed=0), callbacks=[Spy()], **FAST)
    finally:
        rmod.MODELS["speedrun"] = build
    assert len(result.history) == 3
    # 2 batches of 64 per epoch, each forwarded as 2 chunks of 32: 4 forwards per epoch
    assert [s[-1] for s in sides] == [16] * 4 + [24] * 4 + [32] * 4
    assert all(s[0] == 32 for s in sides)
    assert calls == [16, 16, 24, 24, None, None]


def test_notebook_07_full_profile_trains_the_recorded_recipe_unchanged():
    import cifarkit as ck
    full, recipe = ck.notebook_profiles("07_speedrun")["full"], get_recipe("speedrun")
    assert (full["epochs"], full["batch_size"]) == (recipe.epochs, recipe.batch_size)
    assert recipe.with_batch_size(full["batch_size"]) == recipe, "with_batch_size at its own batch changes nothing"
    assert full["n_train"] is None and full["n_test"] is None


def test_with_model_kwargs_keeps_the_recipes_other_model_settings():
    wide = get_recipe("speedrun").with_model_kwargs(widths=(8, 16))
    assert wide.model_kwargs == {**get_recipe("speedrun").model_kwargs, "widths": (8, 16)}
    assert wide.build_model().widths == (8, 16) and all(not s.residual for s in wide.build_model().stages)


def _notebook_cell(notebook: str, cell_id: str) -> str:
    nb = json.loads((REPO / "notebooks" / notebook).read_text())
    return "".join(next(c for c in nb["cells"] if c.get("id") == cell_id)["source"])


def test_notebook_07_reads_its_recorded_speedruns_through_the_package():
    """No repository path and no hand-copied list: the cell reads the copy shipped in the package
    (cifarkit/course/records, written by bench/accuracy.py; tests/test_records.py checks it)."""
    import ast

    cell = _notebook_cell("07_speedrun.ipynb", "recorded")
    tree = ast.parse(cell)
    assert "ck.course.records.speedrun_records()" in cell
    assert "__file__" not in cell and "bench\" /" not in cell and "accuracy_results.json" not in cell
    assert not any(isinstance(node, ast.List) and len(node.elts) > 3 for node in ast.walk(tree)), \
        "a hand-copied list of runs"


def test_notebook_07_shows_the_recorded_ablation_and_timing_tables():
    cell = _notebook_cell("07_speedrun.ipynb", "recorded-ablation")
    kept = json.loads(speedrun_ablation.RECORD.read_text())
    for kind in ("ablation", "timing"):
        rows = [line for line in kept[kind]["table"] if line.startswith("| ")]
        assert rows and all(row in cell for row in rows), kind
    assert set(speedrun_ablation.VARIANTS) <= {row.split(" | ")[0][2:] for row in kept["ablation"]["table"]
                                               if row.startswith("| ")}, "a variant of the script is missing"


@pytest.mark.parametrize("native", [torch.bfloat16, torch.float32])
def test_muon_orthogonalises_in_bf16_only_where_the_device_multiplies_it_natively(monkeypatch, native):
    """The default ns_dtype follows `fast_matmul_dtype` (emulated bf16 products made each step about
    40x slower on an AVX2-only CPU); an explicit ns_dtype is kept."""
    import cifarkit.optim as optim_module
    monkeypatch.setattr(optim_module, "fast_matmul_dtype", lambda device: native)
    torch.manual_seed(3)
    start, grad = torch.randn(32, 16, 3, 3), torch.randn(32, 16, 3, 3)

    def stepped(**kw):
        p = torch.nn.Parameter(start.clone())
        p.grad = grad.clone()
        MuonSGD([p], lr=0.1, momentum=0.6, orthogonalize=True, **kw).step()
        return p.detach()

    default = stepped()
    assert torch.equal(default, stepped(ns_dtype=native))
    other = torch.float32 if native is torch.bfloat16 else torch.bfloat16
    assert not torch.equal(default, stepped(ns_dtype=other)), "the two precisions round differently"
    m = torch.randn(8, 20)
    assert torch.equal(newton_schulz(m), newton_schulz(m, dtype=native))


def test_fast_matmul_dtype_is_bf16_only_on_hardware_with_native_bf16(monkeypatch):
    import cifarkit.optim as optim_module
    from cifarkit import devices
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: native)
        optim_module.fast_matmul_dtype.cache_clear()  # the answer is cached per device
        assert optim_module.fast_matmul_dtype("cpu") is expected
    optim_module.fast_matmul_dtype.cache_clear()
