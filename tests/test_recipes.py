import math

import pytest
import torch

from cifarkit.callbacks import StopAfter
from cifarkit.models import SpeedrunNet
from cifarkit.recipes import RECIPES, TimeToAccuracy, get_recipe, train_recipe
from cifarkit.synthetic import synthetic_cifar

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"widths": (8, 8, 16)}


def test_speedrun_net_shapes_parameters_and_validation():
    torch.manual_seed(0)
    net = SpeedrunNet()
    assert sum(p.numel() for p in net.parameters()) == 1_978_016  # as documented
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    small = SpeedrunNet((8, 8, 16), num_classes=4)
    assert small(torch.randn(3, 3, 32, 32)).shape == (3, 4)
    assert len(small.stages) == 2
    for bad in [dict(widths=(8,)), dict(widths=(8, 0)), dict(num_classes=0)]:
        with pytest.raises(ValueError):
            SpeedrunNet(**bad)


def test_logit_scale_multiplies_the_logits():
    torch.manual_seed(1)
    a = SpeedrunNet((8, 8, 16), logit_scale=1.0).eval()
    b = SpeedrunNet((8, 8, 16), logit_scale=0.125).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(b(x), a(x) * 0.125)


def test_get_recipe_names_and_validation():
    assert set(RECIPES) == {"gated-seed", "gated-improved", "speedrun"}
    seed = get_recipe("gated-seed")
    assert (seed.optimizer, seed.lr, seed.weight_decay, seed.epochs, seed.batch_size) == ("adam", 1e-3, 1e-4, 30, 128)
    assert not seed.augment and seed.schedule == "constant" and seed.label_smoothing == 0
    assert get_recipe("speedrun", epochs=3).epochs == 3 and RECIPES["speedrun"].epochs != 3
    with pytest.raises(ValueError, match="gated-seed, gated-improved, speedrun"):
        get_recipe("fastest")
    for bad in [dict(epochs=0), dict(lr=-1.0), dict(schedule="cosine"), dict(label_smoothing=1.0),
                dict(warmup=0.0), dict(batch_size=1.5)]:
        with pytest.raises(ValueError):
            get_recipe("speedrun", **bad)


def test_triangular_schedule_rises_to_the_peak_then_falls_to_zero():
    recipe = get_recipe("speedrun", epochs=2, lr=0.4, warmup=0.25)
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


def test_norm_and_bias_parameters_can_skip_weight_decay():
    net = SpeedrunNet(TINY["widths"])
    opt = get_recipe("speedrun").build_optimizer(net)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 5e-4 and plain["weight_decay"] == 0.0
    assert all(p.dim() == 4 or p.dim() == 2 for p in decayed["params"])
    assert all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(net.parameters()))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]
    gated = get_recipe("gated-seed", model_kwargs={"widths": (4, 4, 4, 4, 4), "hidden": 8})
    model = gated.build_model()
    adam = gated.build_optimizer(model)
    assert isinstance(adam, torch.optim.Adam) and len(adam.param_groups) == 1
    assert adam.param_groups[0]["weight_decay"] == 1e-4


def test_time_to_accuracy_records_the_first_epoch_at_each_target():
    cb = TimeToAccuracy((0.5, 0.9))
    for epoch, acc in enumerate([0.3, 0.6, 0.55, 0.95], start=1):
        cb.on_epoch_end(None, None, {"epoch": epoch, "val_acc": acc, "seconds": 10.0})
    assert cb.reached == {0.5: (2, 20.0), 0.9: (4, 40.0)}
    other = TimeToAccuracy((0.5, 0.9))
    other.load_state_dict(cb.state_dict())
    assert other.reached == cb.reached


def test_train_recipe_resumes_from_its_checkpoint_exactly(tmp_path):
    data = synthetic_cifar(256, 128, seed=0)
    recipe = get_recipe("speedrun", epochs=2, batch_size=64, model_kwargs=TINY)
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
