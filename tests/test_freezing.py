import copy
import io
import math

import pytest
import torch
import torch.nn as nn
import torchvision

from cifarkit.freezing import (FreezeSummary, count_parameters, freeze_initial, frozen_norm_layers,
                               trainable_parameters, unfreeze_all)

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
