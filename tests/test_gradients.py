import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from cifarkit.gradients import GradientNormRecorder, gradient_norms, parameter_groups
from cifarkit.models import GatedCNN, ResNetForCifar, SmallResNet, remove_skip_connections


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def batch(n=4, seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def loss_of(model, seed=0, size=8):
    x, y = batch(seed=seed, size=size)
    return F.cross_entropy(model(x), y)


def test_parameter_and_module_norms_match_manual_computation():
    model = tiny()
    norms = gradient_norms(model, loss_of(model), by="parameter")  # calls backward itself
    names = [n for n, _ in model.named_parameters()]
    assert list(norms) == names
    for name, p in model.named_parameters():
        assert norms[name] == pytest.approx(p.grad.norm().item(), rel=1e-5)
        assert norms[name] > 0

    by_module = gradient_norms(model, by="module")  # reads the existing .grad
    assert list(by_module) == ["0", "1", "5"]
    conv = model[0]
    expected = math.sqrt(conv.weight.grad.norm().item() ** 2 + conv.bias.grad.norm().item() ** 2)
    assert by_module["0"] == pytest.approx(expected, rel=1e-5)
    # tiny has no blocks, so "block" falls back to one group per layer
    assert gradient_norms(model, by="block") == by_module
    custom = gradient_norms(model, by=lambda name: "head" if name.startswith("5.") else "body")
    assert list(custom) == ["body", "head"]
    assert custom["head"] == pytest.approx(by_module["5"], rel=1e-6)
    assert custom["body"] == pytest.approx(math.hypot(by_module["0"], by_module["1"]), rel=1e-5)


def test_frozen_parameters_are_skipped_and_missing_grads_count_as_zero():
    model = tiny()
    for p in model[0].parameters():
        p.requires_grad_(False)
    model[1].bias.requires_grad_(False)
    norms = gradient_norms(model, loss_of(model), by="module")
    assert list(norms) == ["1", "5"]  # layer 0 is fully frozen: absent, not 0
    assert norms["1"] == pytest.approx(model[1].weight.grad.norm().item(), rel=1e-5)
    model[5].weight.grad = None
    model[5].bias.grad = None
    assert gradient_norms(model, by="module")["5"] == 0.0
    with pytest.raises(ValueError, match="'blocks'"):
        gradient_norms(model, by="blocks")
    with pytest.raises(TypeError, match="nn.Module"):
        gradient_norms("model")


def test_torchvision_resnet_grouped_by_block():
    torch.manual_seed(1)
    model = torchvision.models.resnet18(num_classes=3)
    norms = gradient_norms(model, loss_of(model, size=32))
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert list(norms) == ["conv1", "bn1", *blocks, "fc"]
    params = [p for n, p in model.named_parameters() if n.startswith("layer2.0.")]
    assert any(n.startswith("layer2.0.downsample") for n, _ in model.named_parameters())
    expected = torch.sqrt(sum(p.grad.pow(2).sum() for p in params)).item()
    assert norms["layer2.0"] == pytest.approx(expected, rel=1e-5)
    # no-skip blocks are still blocks; their unused downsample contributes zero
    remove_skip_connections(model, ["layer2.0"])
    model.zero_grad(set_to_none=True)
    norms = gradient_norms(model, loss_of(model, size=32))
    assert list(norms) == ["conv1", "bn1", *blocks, "fc"]
    assert model.layer2[0].downsample[0].weight.grad is None
    main = [p for n, p in model.named_parameters()
            if n.startswith("layer2.0.") and "downsample" not in n]
    assert norms["layer2.0"] == pytest.approx(
        torch.sqrt(sum(p.grad.pow(2).sum() for p in main)).item(), rel=1e-5)


def test_cifarkit_models_grouped_by_block():
    resnet = ResNetForCifar()
    groups = list(parameter_groups(resnet, "block"))
    assert groups[:3] == ["body.conv1", "body.bn1", "body.layer1.0"]
    assert groups[-3:] == ["body.layer4.1", "head.0", "head.2"]
    for p in resnet.body.parameters():
        p.requires_grad_(False)
    assert list(parameter_groups(resnet, "block")) == ["head.0", "head.2"]

    gated = GatedCNN(widths=(4, 4, 8, 8, 8), hidden=8)
    groups = list(parameter_groups(gated, "block"))
    assert groups[:4] == ["features.0.gate_block", "features.0.bn",
                          "features.1.gate_block", "features.1.bn"]
    assert groups[-2:] == ["head.2", "head.5"] and len(groups) == 12

    small = SmallResNet(2, widths=(4, 8))
    assert list(parameter_groups(small, "block")) == [
        "stem.0", "stem.1", "stage1.0", "stage1.1", "stage2.0", "stage2.1", "fc"]


def train_steps(model, n, record_manual=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(n):
        opt.zero_grad()
        loss_of(model, seed=step).backward()
        if record_manual is not None:
            record_manual.append(gradient_norms(model, by="block"))
        opt.step()


def test_recorder_hooks_record_every_backward_pass():
    model = SmallResNet(1, widths=(4, 8), num_classes=3)
    manual = []
    with GradientNormRecorder(model, by="block") as rec:
        train_steps(model, 3, manual)
    assert rec.steps == [0, 1, 2]
    assert len(rec.history) == 3
    for got, want in zip(rec.history, manual):
        assert list(got) == list(want)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-5)
    assert manual[0] != manual[1]  # the steps really differ
    names, steps, norms = rec.to_arrays()
    assert names == list(manual[0]) and steps.tolist() == [0, 1, 2]
    assert norms.shape == (3, len(names))
    assert norms[2, names.index("fc")] == pytest.approx(manual[2]["fc"], rel=1e-5)

    train_steps(model, 2)  # detached: nothing more is recorded
    assert len(rec.history) == 3
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters()
               if getattr(p, "_post_accumulate_grad_hooks", None) is not None)


def test_recorder_every_and_manual_record():
    model = SmallResNet(1, widths=(4, 8), num_classes=3)
    manual = []
    rec = GradientNormRecorder(model, every=2).attach()
    train_steps(model, 5, manual)
    rec.detach()
    assert rec.steps == [0, 2, 4]
    assert [r["fc"] for r in rec.history] == pytest.approx([manual[i]["fc"] for i in (0, 2, 4)],
                                                           rel=1e-5)
    rec.clear()
    assert rec.history == [] and rec.steps == []

    manual_rec = GradientNormRecorder(model, by="parameter")
    loss_of(model).backward()
    snap = manual_rec.record()
    assert snap["fc.weight"] == pytest.approx(model.fc.weight.grad.norm().item(), rel=1e-5)
    assert manual_rec.history == [snap] and manual_rec.steps == [0]
    with pytest.raises(ValueError, match="every"):
        GradientNormRecorder(model, every=0)
    with pytest.raises(ValueError, match="by must be"):
        GradientNormRecorder(model, by="layer")
