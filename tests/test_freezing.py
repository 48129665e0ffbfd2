import copy
import io
import math

import pytest
import torch
import torch.nn as nn
import torchvision

from cifarkit.course.lesson02 import backward_ops, frozen_norm_spread, norm_output_spread, time_train_steps
from cifarkit.freezing import (FreezeSummary, count_parameters, freeze_initial, frozen_norm_layers, recalibrate_bn,
                               set_frozen_bn_eval, trainable_parameters, unfreeze_all)

from conftest import TinyNet


def blocks(*sizes):
    """Bias-free linear layers with exactly the given numbers of weights (forward not needed)."""
    return nn.Sequential(*[nn.Linear(1, s, bias=False) for s in sizes])


def frozen_flags(model):
    return [not p.requires_grad for p in model.parameters()]


def x4(seed=0):
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def test_count_parameters_exact(resnet):
    net = TinyNet()
    assert count_parameters(net) == 1610
    assert count_parameters(net, trainable_only=True) == 1610
    # resnet18: 11,176,512 backbone parameters + a 512x10 head with bias.
    assert count_parameters(resnet) == 11_181_642
    net.conv2.weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 1610 - 1152
    # Tied weights are counted once.
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert count_parameters(tied) == 16


def test_parameters_rounding_never_exceeds_request():
    # prefix sums: 100, 300, 600, 1000
    model = blocks(100, 200, 300, 400)
    cases = {0.0: 0, 0.099: 0, 0.1: 100, 0.29: 100, 0.3: 300, 0.59: 300, 0.6: 600,
             0.99: 600, 1.0: 1000}
    for fraction, expected in cases.items():
        s = freeze_initial(model, fraction)
        assert s.frozen == expected, fraction
        assert s.trainable == 1000 - expected
        assert s.total == 1000
        assert s.frozen_fraction == expected / 1000
        assert count_parameters(model, trainable_only=True) == 1000 - expected
        assert s.frozen_fraction <= fraction


def test_parameters_mode_on_resnet_is_tight_prefix(resnet):
    total = count_parameters(resnet)
    for fraction in (0.1, 0.3, 0.5, 0.9):
        s = freeze_initial(resnet, fraction)
        flags = frozen_flags(resnet)
        k = sum(flags)
        assert k > 0
        assert flags == [True] * k + [False] * (len(flags) - k), "frozen set must be a prefix"
        sizes = [p.numel() for p in resnet.parameters()]
        assert s.frozen == sum(sizes[:k])
        # tight: the frozen prefix fits the request, adding the next tensor would not
        assert s.frozen <= fraction * total < s.frozen + sizes[k]
        names = [n for n, _ in resnet.named_parameters()]
        assert s.frozen_parameters == names[:k]
    unfreeze_all(resnet)
    assert count_parameters(resnet, trainable_only=True) == total


def test_partial_layer_is_reported():
    net = TinyNet()
    s = freeze_initial(net, 0.135)  # budget 217.35: conv1.weight (216) fits, its bias would not
    assert s.frozen == 216
    assert s.frozen_parameters == ["conv1.weight"]
    assert s.frozen_layers == []
    assert s.partial_layers == ["conv1"]
    assert net.conv1.bias.requires_grad


def test_layers_mode_counts_parameter_owning_modules():
    net = TinyNet()  # 5 layers own parameters: conv1 bn1 conv2 bn2 fc (pool owns none)
    expected = {0.0: [], 0.19: [], 0.2: ["conv1"], 0.39: ["conv1"], 0.4: ["conv1", "bn1"],
                0.5: ["conv1", "bn1"], 0.99: ["conv1", "bn1", "conv2", "bn2"],
                1.0: ["conv1", "bn1", "conv2", "bn2", "fc"]}
    for fraction, layers in expected.items():
        s = freeze_initial(net, fraction, by="layers")
        assert s.frozen_layers == layers, fraction
        assert s.partial_layers == []
        frozen_names = {n.rsplit(".", 1)[0] for n, p in net.named_parameters() if not p.requires_grad}
        assert frozen_names == set(layers)
    s = freeze_initial(net, 0.4, by="layers")
    assert s.frozen == 216 + 8 + 8 + 8
    assert s.eval_norm_layers == ["bn1"]


def test_zero_and_one():
    net = TinyNet()
    s0 = freeze_initial(net, 0)
    assert (s0.frozen, s0.trainable) == (0, 1610)
    assert s0.frozen_layers == [] and s0.eval_norm_layers == []
    assert frozen_norm_layers(net) == []
    s1 = freeze_initial(net, 1)
    assert (s1.frozen, s1.trainable, s1.frozen_fraction) == (1610, 0, 1.0)
    assert s1.eval_norm_layers == ["bn1", "bn2"]
    assert trainable_parameters(net) == []


def test_repeat_call_is_idempotent_and_resets():
    net = TinyNet()
    a = freeze_initial(net, 0.5)
    flags_a = frozen_flags(net)
    b = freeze_initial(net, 0.5)
    assert a == b
    assert frozen_flags(net) == flags_a
    # no duplicated hooks on the frozen BN
    assert sum(1 for _ in net.bn1._forward_pre_hooks.values()) == 1
    c = freeze_initial(net, 0.1)  # a smaller fraction unfreezes again
    assert c.frozen < a.frozen
    assert sum(frozen_flags(net)) < sum(flags_a)
    assert frozen_norm_layers(net) == []


def test_optimizer_sees_exactly_the_trainable_parameters_and_no_grad_reaches_frozen():
    torch.manual_seed(0)
    net = TinyNet()
    s = freeze_initial(net, 0.5, by="layers")  # conv1, bn1 frozen
    frozen_names = set(s.frozen_parameters)
    assert frozen_names == {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"}
    expected = [p for n, p in net.named_parameters() if n not in frozen_names]
    got = trainable_parameters(net)
    assert [id(p) for p in got] == [id(p) for p in expected]
    assert count_parameters(net, trainable_only=True) == sum(p.numel() for p in got) == s.trainable

    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD(got, lr=0.1, momentum=0.9, weight_decay=1e-3)
    net.train()
    for step in range(2):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(x4(step)), torch.tensor([0, 1, 2, 3]))
        loss.backward()
        for n, p in net.named_parameters():
            if n in frozen_names:
                assert p.grad is None, n
            else:
                assert p.grad is not None, n
        opt.step()
    for n, p in net.named_parameters():
        if n in frozen_names:
            assert torch.equal(p, before[n]), n
        else:
            assert not torch.equal(p, before[n]), n


def test_frozen_bn_running_stats_fixed_through_model_train():
    torch.manual_seed(0)
    net = TinyNet()
    freeze_initial(net, 0.4, by="layers")  # conv1, bn1 frozen; bn2 trainable
    mean1, var1 = net.bn1.running_mean.clone(), net.bn1.running_var.clone()
    mean2 = net.bn2.running_mean.clone()
    net.train()  # must not undo the freeze
    for seed in range(3):
        net.train()
        net(x4(seed) * 3 + 1)
    assert torch.equal(net.bn1.running_mean, mean1)
    assert torch.equal(net.bn1.running_var, var1)
    assert int(net.bn1.num_batches_tracked) == 0
    assert not net.bn1.training  # the forward ran in eval mode (train() may flip the flag until then)
    assert not torch.equal(net.bn2.running_mean, mean2)  # trainable BN still learns its stats
    assert int(net.bn2.num_batches_tracked) == 3
    assert net.bn2.training

    # the pin survives copying and pickling
    clone = copy.deepcopy(net)
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for m in (clone, loaded):
        m.train()
        m(x4(7))
        assert torch.equal(m.bn1.running_mean, mean1)

    # unfreeze_all releases it
    assert unfreeze_all(net) == 4
    assert frozen_norm_layers(net) == []
    assert net.bn1.training  # model was in train mode
    net(x4(9) * 3 + 1)
    assert not torch.equal(net.bn1.running_mean, mean1)


def test_bn_eval_false_lets_frozen_bn_update():
    net = TinyNet()
    s = freeze_initial(net, 0.4, by="layers", bn_eval=False)
    assert s.eval_norm_layers == []
    mean1 = net.bn1.running_mean.clone()
    net.train()
    net(x4() * 3 + 1)
    assert not net.bn1.weight.requires_grad
    assert not torch.equal(net.bn1.running_mean, mean1)


def test_frozen_bn_normalises_with_running_stats_in_train_mode():
    torch.manual_seed(0)
    net = TinyNet()
    net.train()
    for seed in range(3):  # give bn1 non-trivial running statistics
        net(x4(seed))
    freeze_initial(net, 1.0)
    x = x4(5) * 2
    net.train()
    y_train = net(x)
    net.eval()
    y_eval = net(x)
    assert torch.allclose(y_train, y_eval)


def test_affine_free_norm_before_frozen_layer_is_pinned():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False), nn.Conv2d(4, 4, 3),
                        nn.BatchNorm2d(4, affine=False), nn.Conv2d(4, 2, 1))
    s = freeze_initial(net, 0.5, by="layers")  # 3 layers own parameters -> floor(1.5) = 1
    assert s.frozen_layers == ["0"]
    assert s.eval_norm_layers == []
    s = freeze_initial(net, 0.7, by="layers")  # floor(2.1) = 2 -> "0", "2"
    assert s.frozen_layers == ["0", "2"]
    assert s.eval_norm_layers == ["1"]  # before the last frozen layer; "3" is after it


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf"), "0.3", None, True, [0.5]])
def test_bad_fraction_raises_value_error(bad):
    net = TinyNet()
    with pytest.raises(ValueError, match="fraction"):
        freeze_initial(net, bad)
    assert count_parameters(net, trainable_only=True) == 1610  # nothing changed


def test_bad_arguments():
    with pytest.raises(ValueError, match="blocks"):
        freeze_initial(TinyNet(), 0.5, by="blocks")
    with pytest.raises(TypeError):
        freeze_initial("not a model", 0.5)
    with pytest.raises(TypeError):
        count_parameters([1, 2, 3])


def test_summary_str_and_dict():
    net = TinyNet()
    s = freeze_initial(net, 0.4, by="layers")
    assert isinstance(s, FreezeSummary)
    d = s.to_dict()
    assert d["requested"] == 0.4 and d["by"] == "layers"
    assert d["frozen"] == 240 and d["trainable"] == 1370 and d["total"] == 1610
    assert math.isclose(d["frozen_fraction"], 240 / 1610)
    assert d["n_frozen_layers"] == 2 and d["last_frozen_layer"] == "bn1"
    assert d["frozen_layers"] == ["conv1", "bn1"]
    text = str(s)
    assert "14.9%" in text and "40.0%" in text
    assert "240" in text and "1,370" in text and "1,610" in text
    assert "conv1 ... bn1" in text


# --- recalibrate_bn -----------------------------------------------------------------------------

def calibration_batches(n=3, seed=0):
    """Batches far from the placeholder statistics (mean 0, variance 1) once through conv1."""
    return [(x4(seed + i) * 3 + 1, torch.zeros(4, dtype=torch.int64)) for i in range(n)]


def conv1_batch_stats(net, batches):
    """The average of conv1's per-batch channel means and unbiased variances: what bn1 must hold."""
    with torch.no_grad():
        outs = [net.conv1(x) for x, _ in batches]
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    variances = torch.stack([o.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for o in outs]).mean(0)
    return means, variances


def test_recalibrate_bn_sets_the_average_batch_statistics_and_keeps_weights():
    net = TinyNet().eval()
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    batches = calibration_batches()
    assert recalibrate_bn(net, batches) == 12
    mean, var = conv1_batch_stats(net, batches)
    assert torch.allclose(net.bn1.running_mean, mean, atol=1e-5)
    assert torch.allclose(net.bn1.running_var, var, rtol=1e-4)
    assert not torch.allclose(net.bn1.running_var, torch.ones(8), atol=0.1)  # not the placeholder
    assert int(net.bn1.num_batches_tracked) == 3
    assert net.bn1.momentum == 0.1  # restored after the cumulative average
    assert not net.training and not net.bn1.training  # eval mode restored
    assert all(torch.equal(p, weights[n]) for n, p in net.named_parameters())
    net.train()
    recalibrate_bn(net, batches)
    assert net.training and net.bn1.training


def test_recalibrate_bn_normalises_frozen_layers_that_placeholders_do_not():
    net = TinyNet()
    freeze_initial(net, 1.0)  # every BN pinned to eval mode, with placeholder statistics
    x = x4(3) * 3 + 1
    with torch.no_grad():
        before = net.bn1(net.conv1(x))
    assert before.mean(dim=(0, 2, 3)).abs().max() > 0.5  # mean 0 / variance 1: nothing normalised
    recalibrate_bn(net, [x])
    with torch.no_grad():
        after = net.bn1(net.conv1(x))
    assert after.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert torch.allclose(after.var(dim=(0, 2, 3)), torch.ones(8), atol=0.1)


def test_recalibrate_bn_releases_and_repins_pinned_layers():
    net = TinyNet()
    freeze_initial(net, 0.4, by="layers")  # conv1, bn1 frozen and bn1 pinned
    assert frozen_norm_layers(net) == ["bn1"]
    batches = calibration_batches()
    recalibrate_bn(net, batches)
    mean, _ = conv1_batch_stats(net, batches)
    assert torch.allclose(net.bn1.running_mean, mean, atol=1e-5)  # the pinned layer was calibrated
    assert frozen_norm_layers(net) == ["bn1"]  # and is pinned again
    assert sum(1 for _ in net.bn1._forward_pre_hooks.values()) == 1
    calibrated = net.bn1.running_mean.clone()
    net.train()
    net(x4(8))
    assert torch.equal(net.bn1.running_mean, calibrated)


def test_recalibrate_bn_max_batches_and_plain_tensors():
    net = TinyNet()
    batches = calibration_batches(5)
    assert recalibrate_bn(net, iter(batches), max_batches=2) == 8
    mean, _ = conv1_batch_stats(net, batches[:2])
    assert torch.allclose(net.bn1.running_mean, mean, atol=1e-5)
    assert recalibrate_bn(net, [x for x, _ in batches]) == 20  # image tensors alone are fine


def test_recalibrate_bn_bad_input_leaves_statistics_alone():
    net = TinyNet()
    recalibrate_bn(net, calibration_batches())
    stats = net.bn1.running_mean.clone()
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(net, [])
    assert torch.equal(net.bn1.running_mean, stats)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_batches"):
            recalibrate_bn(net, calibration_batches(), max_batches=bad)
    with pytest.raises(TypeError, match="image tensors"):
        recalibrate_bn(net, [[1, 2, 3]])
    with pytest.raises(TypeError):
        recalibrate_bn("not a model", calibration_batches())


# --- time_train_steps and the skipped backward pass ---------------------------------------------

def test_time_train_steps_measures_each_model_and_changes_no_weight(one_thread):
    full, half = TinyNet(), TinyNet()
    freeze_initial(half, 0.4, by="layers")
    weights = {n: p.detach().clone() for n, p in full.named_parameters()}
    batch = (x4(), torch.tensor([0, 1, 2, 3]))
    times = time_train_steps({"full": full, "half": half}, batch, rounds=3, warmup=1)
    assert list(times) == ["full", "half"]
    assert all(len(t) == 3 and all(s > 0 for s in t) for t in times.values())
    assert all(torch.equal(p, weights[n]) for n, p in full.named_parameters())
    assert all(p.grad is None for p in full.parameters())
    assert full.training


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # conv2's input needs no gradient
def test_frozen_prefix_gets_no_backward_pass(one_thread):
    net = TinyNet()
    freeze_initial(net, 0.4, by="layers")  # conv1, bn1 frozen
    calls = {"conv1": 0, "bn1": 0, "conv2": 0}
    for name in calls:
        getattr(net, name).register_full_backward_hook(
            lambda m, gi, go, name=name: calls.__setitem__(name, calls[name] + 1))
    time_train_steps({"net": net}, (x4(), torch.tensor([0, 1, 2, 3])), rounds=2, warmup=0)
    assert calls == {"conv1": 0, "bn1": 0, "conv2": 2}


def test_time_train_steps_bad_arguments():
    batch = (x4(), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="models"):
        time_train_steps({}, batch)
    with pytest.raises(ValueError, match="rounds"):
        time_train_steps({"a": TinyNet()}, batch, rounds=0)
    with pytest.raises(ValueError, match="warmup"):
        time_train_steps({"a": TinyNet()}, batch, warmup=-1)
    frozen = TinyNet()
    freeze_initial(frozen, 1.0)
    with pytest.raises(ValueError, match="no trainable"):
        time_train_steps({"frozen": frozen}, batch)
    with pytest.raises(TypeError, match="nn.Module"):
        time_train_steps({"a": "model"}, batch)


def test_plain_module_attribute_freezes_nothing():
    """The mistake notebook 02 measures: ``module.requires_grad = False`` is a plain attribute."""
    torch.manual_seed(0)
    net = TinyNet()
    net.conv1.requires_grad = False
    assert all(p.requires_grad for p in net.conv1.parameters())
    assert count_parameters(net, trainable_only=True) == 1610
    assert set_frozen_bn_eval(net) == []


def test_backward_ops_leave_out_the_frozen_prefix():
    torch.manual_seed(0)
    net = TinyNet()
    x, y = x4(), torch.tensor([0, 1, 2, 3])
    full = backward_ops(nn.functional.cross_entropy(net(x), y))
    assert full["ConvolutionBackward0"] == 2
    assert full["AccumulateGrad"] == 10  # every parameter tensor gets a gradient
    freeze_initial(net, 0.4, by="layers")  # conv1, bn1 frozen
    part = backward_ops(nn.functional.cross_entropy(net(x), y))
    assert part["ConvolutionBackward0"] == 1
    assert part["AccumulateGrad"] == 6
    assert sum(part.values()) < sum(full.values())
    with pytest.raises(ValueError, match="no autograd graph"):
        with torch.no_grad():
            backward_ops(net(x))
    with pytest.raises(TypeError):
        backward_ops([1.0])


def test_norm_output_spread_tells_placeholder_from_calibrated_statistics():
    net = TinyNet()
    x = x4(3) * 3 + 1
    before = norm_output_spread(net, x)
    assert before["layers"] == 2
    assert before["max_abs_mean"] > 0.5 or before["std_factor"] > 2  # placeholders: not normalised
    recalibrate_bn(net, [x])
    after = norm_output_spread(net, x)
    assert after["max_abs_mean"] < 1e-3  # bn2 saw bn1 in batch mode (biased variance) while calibrating
    assert 1.0 <= after["std_factor"] < 1.1
    only = norm_output_spread(net, x, ["bn1"])
    assert only["layers"] == 1 and only["std_factor"] <= after["std_factor"]
    net.train()
    norm_output_spread(net, x)
    assert net.training  # mode restored
    with pytest.raises(ValueError, match="no submodule"):
        norm_output_spread(net, x, ["bn9"])
    with pytest.raises(ValueError, match="at least one"):
        norm_output_spread(net, x, [])


def test_norm_output_spread_counts_a_small_std_as_a_factor():
    net = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    with torch.no_grad():
        net[0].weight.fill_(0.0)
        net[0].weight[:, 0] = 0.25  # conv output std 0.25 x the std of channel 0 of the input
    x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    spread = norm_output_spread(net, x)  # placeholder statistics: the std passes through
    assert spread["std_factor"] == pytest.approx(1 / (0.25 * x[:, 0].std().item()), rel=1e-3)


def test_frozen_norm_spread_measures_only_the_layers_a_freeze_pins_and_leaves_the_model_alone():
    net = TinyNet()
    x = x4(3) * 3 + 1
    first_half = frozen_norm_spread(net, x, 0.5)
    assert first_half["layers"] == len(freeze_initial(TinyNet(), 0.5).eval_norm_layers) >= 1
    assert first_half == norm_output_spread(net, x, freeze_initial(TinyNet(), 0.5).eval_norm_layers)
    assert trainable_parameters(net) == list(net.parameters()), "the copy was frozen, not the model"
