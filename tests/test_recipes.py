import math

import pytest
import torch

from cifarkit.callbacks import StopAfter
from cifarkit.models import SpeedrunNet, SpeedrunStage, patch_whitening_filters
from cifarkit.recipes import RECIPES, TimeToAccuracy, get_recipe, train_recipe
from cifarkit.synthetic import synthetic_cifar
from cifarkit.training import History

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"widths": (8, 16)}


def test_speedrun_net_shapes_parameters_and_validation():
    torch.manual_seed(0)
    net = SpeedrunNet()
    assert sum(p.numel() for p in net.parameters()) == 1_972_792  # as documented
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    small = SpeedrunNet((8, 16), num_classes=4)
    assert small(torch.randn(3, 3, 32, 32)).shape == (3, 4)
    assert len(small.stages) == 2 and small.whiten.out_channels == 24
    assert not small.whiten.weight.requires_grad and small.whiten.bias.requires_grad
    assert all(not bn.weight.requires_grad and bn.bias.requires_grad
               for bn in small.modules() if isinstance(bn, torch.nn.BatchNorm2d))
    for bad in [dict(widths=()), dict(widths=(8, 0)), dict(num_classes=0), dict(whiten_kernel=0)]:
        with pytest.raises(ValueError):
            SpeedrunNet(**bad)


def test_logit_scale_multiplies_the_logits():
    torch.manual_seed(1)
    a = SpeedrunNet((8, 16), logit_scale=1.0).eval()
    b = SpeedrunNet((8, 16), logit_scale=0.125).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(b(x), a(x) * 0.125)


def test_whitening_filters_decorrelate_the_patches():
    torch.manual_seed(2)
    mix = torch.tensor([[1.0, 0.9, 0.8], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])
    images = torch.einsum("dc,nchw->ndhw", mix, torch.randn(64, 3, 16, 16)) + 2.0  # correlated colours
    filters = patch_whitening_filters(images, kernel_size=2, eps=0.0)
    assert filters.shape == (24, 3, 2, 2)
    torch.testing.assert_close(filters[12:], -filters[:12])
    out = torch.nn.functional.conv2d(images, filters[:12])          # one channel per direction
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    cov = flat @ flat.T / flat.shape[1]
    torch.testing.assert_close(cov, torch.eye(12), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="N x C x H x W"):
        patch_whitening_filters(images[0])


def test_init_whitening_sets_the_stem_and_keeps_it_frozen():
    torch.manual_seed(3)
    net = SpeedrunNet((8, 16))
    images = torch.randn(32, 3, 32, 32)
    net.init_whitening(images)
    torch.testing.assert_close(net.whiten.weight, patch_whitening_filters(images, 2))
    assert not net.whiten.weight.requires_grad


def test_speedrun_stage_convolutions_start_as_identity_filters():
    torch.manual_seed(4)
    stage = SpeedrunStage(4, 6)
    y = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(stage.res_conv(y), y)                   # square: the identity
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(stage.conv(x)[:, :4], x)                # first in_ch outputs copy the input
    assert not torch.allclose(stage.conv(x)[:, 4:], torch.zeros(2, 2, 8, 8))  # the rest stay random


def test_get_recipe_names_and_validation():
    assert set(RECIPES) == {"gated-seed", "gated-improved", "speedrun-v2", "speedrun-wide", "airbench94-muon", "speedrun",
                            "speedrun-torch-init"}
    wide, base = get_recipe("speedrun-wide"), get_recipe("speedrun-v2")
    assert wide.replace(name="speedrun-v2", epochs=base.epochs, model_kwargs={}, description=base.description) == base
    seed = get_recipe("gated-seed")
    assert (seed.optimizer, seed.lr, seed.weight_decay, seed.epochs, seed.batch_size) == ("adam", 1e-3, 1e-4, 30, 128)
    assert not seed.augment and seed.schedule == "constant" and seed.label_smoothing == 0
    assert get_recipe("speedrun-v2", epochs=3).epochs == 3 and RECIPES["speedrun-v2"].epochs != 3
    with pytest.raises(ValueError, match="gated-seed, gated-improved, speedrun-v2, speedrun-wide, airbench94-muon, speedrun, speedrun-torch-init"):
        get_recipe("fastest")
    for bad in [dict(epochs=0), dict(lr=-1.0), dict(schedule="cosine"), dict(label_smoothing=1.0),
                dict(warmup=0.0), dict(batch_size=1.5)]:
        with pytest.raises(ValueError):
            get_recipe("speedrun-v2", **bad)


def test_triangular_schedule_rises_to_the_peak_then_falls_to_zero():
    recipe = get_recipe("gated-seed", schedule="triangular", epochs=2, lr=0.4, warmup=0.25)
    opt = recipe.build_optimizer(SpeedrunNet(TINY["widths"]))
    sched = recipe.build_scheduler(opt, steps_per_epoch=10)  # 20 steps, peak at step 5
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and math.isclose(lrs[5], 0.4) and max(lrs) == lrs[5]
    assert all(a < b for a, b in zip(lrs[:5], lrs[1:6]))
    assert all(a > b for a, b in zip(lrs[5:-1], lrs[6:]))
    assert math.isclose(opt.param_groups[0]["lr"], 0.0, abs_tol=1e-12)


def test_triangular_schedule_starts_and_ends_at_the_given_shares_of_the_peak():
    recipe = get_recipe("speedrun-v2", epochs=1, lr=1.0, warmup=0.2, lr_start=0.2, lr_end=0.1)
    opt = recipe.build_optimizer(SpeedrunNet(TINY["widths"]))
    sched = recipe.build_scheduler(opt, steps_per_epoch=10)  # peak at step 2
    lrs = [[g["lr"] for g in opt.param_groups]]
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    weights, biases = zip(*lrs)
    assert [round(v, 6) for v in weights[:3]] == [0.2, 0.6, 1.0]
    assert math.isclose(weights[-1], 0.1) and min(weights) == weights[-1]
    assert all(math.isclose(b, w * recipe.bias_lr_scale) for w, b in zip(weights, biases))


def test_with_batch_size_scales_the_learning_rate_linearly():
    base = get_recipe("speedrun-v2")
    small = base.with_batch_size(base.batch_size // 8)
    assert small.batch_size == base.batch_size // 8 and math.isclose(small.lr, base.lr / 8)
    assert small.weight_decay == base.weight_decay and small.epochs == base.epochs


def test_norm_and_bias_parameters_get_their_own_learning_rate_and_decay():
    net = SpeedrunNet(TINY["widths"])
    recipe = get_recipe("speedrun-v2")
    opt = recipe.build_optimizer(net)
    weights, small = opt.param_groups
    assert (weights["lr"], weights["weight_decay"]) == (recipe.lr, recipe.weight_decay)
    assert math.isclose(small["lr"], recipe.lr * 64) and math.isclose(small["weight_decay"], recipe.weight_decay / 64)
    assert all(p.dim() in (2, 4) for p in weights["params"]) and all(p.dim() == 1 for p in small["params"])
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(weights["params"]) + len(small["params"]) == len(trainable) < len(list(net.parameters()))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.85
    no_decay = recipe.replace(decay_norm_and_bias=False, bias_lr_scale=1.0).build_optimizer(net)
    assert no_decay.param_groups[1]["weight_decay"] == 0.0 and no_decay.param_groups[1]["lr"] == recipe.lr
    gated = get_recipe("gated-seed", model_kwargs={"widths": (4, 4, 4, 4, 4), "hidden": 8})
    model = gated.build_model()
    adam = gated.build_optimizer(model)
    assert isinstance(adam, torch.optim.Adam) and len(adam.param_groups) == 1
    assert adam.param_groups[0]["weight_decay"] == 1e-4


def test_new_recipe_fields_are_validated():
    for bad in [dict(bias_lr_scale=0.0), dict(lr_start=1.5), dict(lr_end=-0.1), dict(crop_padding=-1),
                dict(tta_shift=1.0), dict(pad_mode="wrap"), dict(cutout=-2)]:
        with pytest.raises(ValueError):
            get_recipe("speedrun-v2", **bad)
    assert "cutout 8" in get_recipe("speedrun-v2", cutout=8).summary() and "cutout" not in get_recipe("speedrun-v2").summary()
    assert get_recipe("speedrun-v2").tta == "flip + shift 1" and get_recipe("gated-seed").tta == ""
    assert "lookahead" in get_recipe("speedrun-v2").summary()


def test_time_to_accuracy_records_the_first_epoch_at_each_target():
    cb = TimeToAccuracy((0.5, 0.9))
    for epoch, acc in enumerate([0.3, 0.6, 0.55, 0.95], start=1):
        cb.on_epoch_end(None, None, {"epoch": epoch, "val_acc": acc, "seconds": 10.0})
    assert cb.reached == {0.5: (2, 20.0), 0.9: (4, 40.0)}
    other = TimeToAccuracy((0.5, 0.9))
    other.load_state_dict(cb.state_dict())
    assert other.reached == cb.reached
    history = History([{"epoch": e, "val_acc": a, "seconds": 10.0} for e, a in enumerate([0.3, 0.6, 0.55, 0.95], 1)])
    assert TimeToAccuracy.from_history(history, (0.5, 0.9)).reached == cb.reached
    assert TimeToAccuracy.from_history(history, (0.99,)).reached == {}


def test_train_recipe_resumes_from_its_checkpoint_exactly(tmp_path):
    data = synthetic_cifar(256, 128, seed=0)
    recipe = get_recipe("speedrun-v2", epochs=2, batch_size=64, model_kwargs=TINY)
    kw = dict(precision="32", progress=False, log=False, eval_batch_size=128)
    whole = train_recipe(recipe, data, **kw)
    ckpt = tmp_path / "run.pt"
    first = train_recipe(recipe, data, checkpoint=ckpt, callbacks=[StopAfter(1)], **kw)
    assert len(first.history) == 1 and ckpt.exists()
    resumed = train_recipe(recipe, data, checkpoint=ckpt, **kw)
    assert len(resumed.history) == 2
    assert resumed.history["val_acc"] == whole.history["val_acc"]
    assert resumed.history["train_loss"] == whole.history["train_loss"]
    assert resumed.test == whole.test and resumed.test_tta == whole.test_tta
    assert resumed.images_per_s > 0 and resumed.final_acc == whole.test_tta["acc"]


def test_train_recipe_per_image_keeps_which_test_images_were_right():
    data = synthetic_cifar(128, 96, seed=1)
    recipe = get_recipe("speedrun-v2", epochs=1, batch_size=64, model_kwargs=TINY)
    kw = dict(precision="32", progress=False, log=False, eval_batch_size=64)
    plain = train_recipe(recipe, data, **kw)
    kept = train_recipe(recipe, data, per_image=True, **kw)
    assert "correct" not in plain.test and "correct" not in plain.test_tta
    for result, reference in ((kept.test, plain.test), (kept.test_tta, plain.test_tta)):
        correct = result["correct"]
        assert correct.dtype == torch.bool and correct.shape == (96,)
        assert result["acc"] == reference["acc"] == pytest.approx(correct.float().mean().item())
    assert kept.history["val_acc"] == plain.history["val_acc"]


def test_the_recipe_and_model_registries_are_open(monkeypatch):
    from cifarkit import recipes

    monkeypatch.setattr(recipes, "MODELS", dict(recipes.MODELS))
    monkeypatch.setattr(recipes, "RECIPES", dict(recipes.RECIPES))
    with pytest.raises(ValueError, match=r"model must be one of \('gated', 'speedrun'\), got 'tiny'"):
        recipes.Recipe("mine", "tiny", epochs=1, batch_size=8, optimizer="adam", lr=1e-3)
    recipes.register_model("tiny", lambda recipe: torch.nn.Linear(recipe.model_kwargs["n"], 10))
    mine = recipes.register_recipe(recipes.Recipe("mine", "tiny", epochs=1, batch_size=8, optimizer="adam",
                                                  lr=1e-3, model_kwargs={"n": 3}))
    assert recipes.get_recipe("mine", epochs=2).build_model().in_features == 3
    with pytest.raises(ValueError, match="a recipe called 'mine' exists"):
        recipes.register_recipe(mine)
    assert recipes.register_recipe(mine.replace(lr=1e-2), replace=True).lr == 1e-2


@pytest.mark.parametrize("field, value, words", [
    ("epochs", 0, "epochs must be a positive int, got 0"),
    ("batch_size", True, "batch_size must be a positive int, got True (a bool)"),
    ("lr", float("nan"), "lr must be a positive number, got nan"),
    ("warmup", 1.0, "warmup must be a number in (0, 1), got 1.0"),
    ("momentum", 1.0, "momentum must be a number in [0, 1), got 1.0"),
    ("muon_steps", 21, "muon_steps must be an int from 1 to 20, got 21"),
    ("weight_decay", -1e-4, "weight_decay must be a non-negative number, got -0.0001"),
    ("pad_mode", "wrap", "pad_mode must be one of"),
])
def test_recipe_fields_are_checked_with_a_message_naming_them(field, value, words):
    with pytest.raises(ValueError) as info:
        get_recipe("speedrun-v2").replace(**{field: value})
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("channels_last", [True, False])
def test_train_recipe_passes_channels_last_to_the_trainer(channels_last):
    data = synthetic_cifar(64, 32, seed=0)
    recipe = get_recipe("speedrun-v2", epochs=1, batch_size=32, model_kwargs=TINY)
    result = train_recipe(recipe, data, precision="32", channels_last=channels_last, progress=False, log=False,
                          eval_batch_size=32)
    conv = next(m for m in result.model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    assert conv.weight.is_contiguous() is not channels_last


def test_val_images_evaluates_each_epoch_on_a_sample_and_the_end_on_everything(one_thread, monkeypatch):
    """`val_images` makes each epoch's point cheaper; the final evaluations still cover the test split."""
    import cifarkit.recipes as recipes_module
    data = synthetic_cifar(200, 300, seed=0)
    recipe = get_recipe("speedrun", epochs=1).with_model_kwargs(widths=(8, 8, 8)).with_batch_size(50)
    seen, real = [], recipes_module.Trainer.fit

    def spy(self, model, train_loader, val_loader=None, **kw):
        seen.append(sum(len(y) for _, y in val_loader))
        return real(self, model, train_loader, val_loader, **kw)

    monkeypatch.setattr(recipes_module.Trainer, "fit", spy)
    result = train_recipe(recipe, data, precision="32", progress=False, log=False, val_images=100, per_image=True)
    assert seen == [100], "each epoch is evaluated on the sample"
    assert result.test["n"] == 300 and result.test_tta["n"] == 300, "the final evaluations cover the split"
    with pytest.raises(ValueError, match="val_images"):
        train_recipe(recipe, data, precision="32", progress=False, log=False, val_images=0)


@pytest.mark.parametrize("total", [1, 2, 3, 4, 8, 40])
def test_a_one_cycle_warmup_of_one_step_does_not_crash_torch(total):
    """A quarter of 4 steps (or an eighth of 8) is a warm-up of exactly one step, where torch's
    OneCycleLR divides by zero; the recipe's schedule steps through every such run."""
    from cifarkit.recipes import one_cycle_warmup

    for warmup in (0.25, 0.125, 1.0):
        pct = one_cycle_warmup(warmup, total)
        assert 0 <= pct <= 1 and abs(pct - warmup) * total <= 0.5
        if warmup * total not in (1, total):
            assert pct == warmup
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, pct_start=pct)
        for _ in range(total):
            opt.step()
            sched.step()
