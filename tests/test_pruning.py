import types as pytypes

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
import torchvision

from cifarkit.callbacks import Callback
from cifarkit.pruning import (PruneReport, SparsityReport, SparsityTracker, global_magnitude_prune,
                              is_pruned, load_pruned_state_dict, prunable_parameters,
                              remove_pruning, sparsity)

from conftest import TinyNet


TINY_TOTAL = 216 + 1152 + 160
Y4 = torch.tensor([0, 1, 2, 3])


def tiny(seed=0):
    torch.manual_seed(seed)
    return TinyNet()


def x4(seed=0):
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def resnet(seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=10)


def masked(model):
    """Total number of zeros in the pruning masks."""
    return sum(int((b == 0).sum()) for n, b in model.named_buffers() if n.endswith("weight_mask"))


def mask_of(model):
    return {n: b.clone() for n, b in model.named_buffers() if n.endswith("weight_mask")}


def train_steps(model, opt, steps, seed=0):
    model.train()
    for step in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x4(seed + step)), Y4).backward()
        opt.step()


# --------------------------------------------------------------------------- basics

def test_prunable_parameters_in_definition_order():
    net = tiny()
    pairs = prunable_parameters(net)
    assert [m for m, _ in pairs] == [net.conv1, net.conv2, net.fc]
    assert all(n == "weight" for _, n in pairs)
    assert [m for m, _ in prunable_parameters(net, types=(nn.Linear,))] == [net.fc]
    assert [m for m, _ in prunable_parameters(net, types=nn.BatchNorm2d)] == [net.bn1, net.bn2]
    r = resnet()
    convs = [m for m in r.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m for m, _ in prunable_parameters(r)] == convs and len(convs) == 21
    global_magnitude_prune(net, 0.2)
    assert [m for m, _ in prunable_parameters(net)] == [net.conv1, net.conv2, net.fc]
    with pytest.raises(TypeError):
        prunable_parameters(net, types=("Conv2d",))


def test_unpruned_model_sparsity_counts_real_zeros():
    net = tiny()
    rep = sparsity(net)
    assert isinstance(rep, SparsityReport)
    assert (rep.zeros, rep.total, rep.global_sparsity) == (0, TINY_TOTAL, 0.0)
    assert list(rep.per_layer) == ["conv1", "conv2", "fc"]
    with torch.no_grad():
        net.fc.weight[:5, :] = 0  # 80 of 160
    rep = sparsity(net)
    assert rep.zeros == 80 and rep.per_layer["fc"] == 0.5
    assert rep.global_sparsity == 80 / TINY_TOTAL
    assert not is_pruned(net)
    assert sparsity(nn.Sequential(nn.ReLU())).total == 0


@pytest.fixture(scope="module")
def pruned_resnet():
    """resnet18 pruned to 30% once for the module; tests must not modify it."""
    r = resnet(0)
    total = sum(m.weight.numel() for m, _ in prunable_parameters(r))
    rep = global_magnitude_prune(r, 0.3)
    r.eval()
    return r, rep, total


def test_global_prune_is_exact_and_uneven_per_layer(pruned_resnet):
    r, rep, total = pruned_resnet
    assert isinstance(rep, PruneReport)
    assert rep.total == total == 11_176_512 - 9_600 + 5_120  # backbone+head minus BN, biases
    assert rep.zeros == rep.newly_pruned == masked(r) == round(0.3 * total)
    assert abs(rep.global_sparsity - 0.3) <= 1 / total
    # one global threshold: every masked weight is no larger than every kept one
    pairs = prunable_parameters(r)
    kept_min = min(m.weight_orig[m.weight_mask == 1].abs().min() for m, _ in pairs)
    gone_max = max(m.weight_orig[m.weight_mask == 0].abs().max() for m, _ in pairs)
    assert gone_max <= kept_min
    # per layer: uneven, but the weighted mean is the global value
    values = list(rep.per_layer.values())
    assert len(values) == 21
    assert max(values) - min(values) > 0.05
    weighted = sum(rep.per_layer[n] * rep.per_layer_total[n] for n in rep.per_layer) / rep.total
    assert abs(weighted - rep.global_sparsity) < 1e-12
    assert sum(rep.per_layer_zeros.values()) == rep.zeros
    # the model's own forward-time weights agree with the report
    r(x4())
    assert sum(int((m.weight == 0).sum()) for m, _ in pairs) == rep.zeros
    assert sparsity(r) == SparsityReport(**{k: v for k, v in vars(rep).items()
                                            if k in SparsityReport.__dataclass_fields__})


@pytest.mark.parametrize("amount", [0.1, 0.3, 0.55, 0.999])
def test_global_prune_exact_counts_small_model(amount):
    net = tiny()
    rep = global_magnitude_prune(net, amount)
    assert rep.zeros == masked(net) == round(amount * TINY_TOTAL)
    assert abs(rep.global_sparsity - amount) <= 1 / TINY_TOTAL
    weighted = sum(rep.per_layer[n] * rep.per_layer_total[n] for n in rep.per_layer) / rep.total
    assert abs(weighted - rep.global_sparsity) < 1e-12
    if amount < 0.9:
        assert len(set(rep.per_layer.values())) == 3  # uneven


def test_types_restrict_pruning():
    net = tiny()
    rep = global_magnitude_prune(net, 0.5, types=(nn.Linear,))
    assert rep.total == 160 and rep.zeros == 80
    assert hasattr(net.fc, "weight_mask") and not hasattr(net.conv1, "weight_mask")
    assert sparsity(net).zeros == 80  # measured over conv + linear: the convs have no zeros
    with pytest.raises(ValueError, match="no prunable"):
        global_magnitude_prune(net, 0.5, types=(nn.LSTM,))


def test_amount_zero_adds_structure_without_zeros():
    net = tiny()
    rep = global_magnitude_prune(net, 0.0)
    assert rep.zeros == 0 and is_pruned(net)
    assert all(hasattr(m, "weight_mask") for m, _ in prunable_parameters(net))


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.01, float("nan"), "0.3", None, True, 3])
def test_bad_amount_raises_value_error(bad):
    net = tiny()
    with pytest.raises(ValueError, match="amount"):
        global_magnitude_prune(net, bad)
    assert not is_pruned(net)


# --------------------------------------------------------------------------- pruning twice

def test_pruning_twice_targets_the_total_by_default():
    net = tiny()
    first = global_magnitude_prune(net, 0.3)
    m1 = mask_of(net)
    again = global_magnitude_prune(net, 0.3)  # re-running the cell: no-op
    assert again.newly_pruned == 0 and again.masked_before == first.zeros
    assert again.zeros == round(0.3 * TINY_TOTAL) == masked(net)
    assert all(torch.equal(m1[k], v) for k, v in mask_of(net).items())

    more = global_magnitude_prune(net, 0.5)
    assert more.zeros == masked(net) == round(0.5 * TINY_TOTAL)
    assert more.newly_pruned == round(0.5 * TINY_TOTAL) - round(0.3 * TINY_TOTAL)
    for k, v in mask_of(net).items():  # what was pruned stays pruned
        assert bool((v[m1[k] == 0] == 0).all())

    with pytest.warns(UserWarning, match="never un-prunes"):
        less = global_magnitude_prune(net, 0.2)
    assert less.newly_pruned == 0 and less.zeros == round(0.5 * TINY_TOTAL)


def test_pruning_twice_incremental_matches_torch():
    net = tiny()
    reference = tiny()
    n = TINY_TOTAL
    k1 = round(0.3 * n)
    k2 = round(0.3 * (n - k1))
    global_magnitude_prune(net, 0.3, incremental=True)
    rep = global_magnitude_prune(net, 0.3, incremental=True)
    assert rep.newly_pruned == k2 and rep.zeros == masked(net) == k1 + k2
    assert abs(rep.global_sparsity - 0.51) <= 1 / n
    # exactly what plain torch does with the same calls
    for _ in range(2):
        prune.global_unstructured(prunable_parameters(reference), pruning_method=prune.L1Unstructured,
                                  amount=0.3)
    for (a, b) in zip(mask_of(net).values(), mask_of(reference).values()):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- training behaviour

@pytest.mark.parametrize("prune_before_fit", [False, True])
def test_pruning_works_on_a_channels_last_model_after_a_bf16_fit(prune_before_fit):
    """The Trainer converts models (and 4-d mask buffers) to channels_last under autocast;
    pruning right after such a fit must work and match pruning the contiguous twin exactly."""
    from cifarkit.loader import TensorLoader
    from cifarkit.training import Trainer
    from conftest import random_images

    net = tiny()
    if prune_before_fit:
        global_magnitude_prune(net, 0.2)
    x, y = random_images(64)
    Trainer(1, precision="bf16", progress=False, log=False).fit(net, TensorLoader(x, y, 32))
    conv = net.conv2
    assert not (conv.weight_orig if prune_before_fit else conv.weight).is_contiguous()
    twin = tiny()
    load_pruned_state_dict(twin, net.state_dict())

    report = global_magnitude_prune(net, 0.3)
    expected = global_magnitude_prune(twin, 0.3)
    assert report.zeros == expected.zeros == round(0.3 * TINY_TOTAL)
    assert all(torch.equal(mask_of(net)[k], mask_of(twin)[k]) for k in mask_of(twin))
    with torch.no_grad():
        net.eval(), twin.eval()
        torch.testing.assert_close(net(x4()), twin(x4()), rtol=1e-4, atol=1e-5)


def test_masked_weights_stay_zero_under_adam_with_weight_decay():
    net = tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-2)  # built before pruning
    train_steps(net, opt, 3)
    rep0 = global_magnitude_prune(net, 0.4)
    orig_before = {n: m.weight_orig.detach().clone() for n, m in
                   [("conv1", net.conv1), ("conv2", net.conv2), ("fc", net.fc)]}
    train_steps(net, opt, 20, seed=100)
    rep1 = sparsity(net)
    assert rep1.zeros == rep0.zeros == round(0.4 * TINY_TOTAL)
    assert rep1.per_layer == rep0.per_layer
    for name, m in [("conv1", net.conv1), ("conv2", net.conv2), ("fc", net.fc)]:
        hole = m.weight_mask == 0
        assert bool((m.weight[hole] == 0).all())  # forward-time weights stay zero
        # ... while weight decay + Adam's moments move every masked entry of weight_orig
        assert bool((m.weight_orig[hole] != orig_before[name][hole]).all())
        # and the kept entries are trained
        assert not torch.equal(m.weight_orig[~hole], orig_before[name][~hole])


def test_remove_pruning_lets_weights_regrow():
    net = tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-2)
    rep = global_magnitude_prune(net, 0.3)
    train_steps(net, opt, 5)
    assert remove_pruning(net) == 3
    assert not is_pruned(net)
    assert sorted(n for n, _ in net.named_parameters() if "weight" in n and "bn" not in n) == [
        "conv1.weight", "conv2.weight", "fc.weight"]
    assert not any(n.endswith("_mask") for n, _ in net.named_buffers())
    after_remove = sparsity(net)
    assert after_remove.zeros == rep.zeros  # pruning is baked in, not undone
    assert remove_pruning(net) == 0  # no-op now
    train_steps(net, opt, 3, seed=50)  # the same optimizer still owns the parameters
    regrown = sparsity(net)
    assert regrown.global_sparsity < after_remove.global_sparsity


def test_reprune_after_remove_masks_the_baked_zeros_first():
    net = tiny()
    global_magnitude_prune(net, 0.3)
    first = mask_of(net)
    remove_pruning(net)
    global_magnitude_prune(net, 0.3)
    assert all(torch.equal(first[k], v) for k, v in mask_of(net).items())


# --------------------------------------------------------------------------- state dict

def test_pruned_state_dict_round_trip(pruned_resnet):
    src, rep, _ = pruned_resnet
    sd = src.state_dict()
    assert "conv1.weight_orig" in sd and "conv1.weight_mask" in sd and "conv1.weight" not in sd
    fresh = resnet(1)
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(sd)  # the plain way fails: that is why the helper exists
    fresh = resnet(1)
    result = load_pruned_state_dict(fresh, sd)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    assert is_pruned(fresh)
    assert sparsity(fresh) == SparsityReport(**{k: v for k, v in vars(rep).items()
                                                if k in SparsityReport.__dataclass_fields__})
    fresh.eval()
    x = x4(3)
    assert torch.equal(fresh(x), src(x))


def test_pruned_state_dict_round_trip_keeps_masks_through_training(tmp_path):
    src = tiny(0)
    global_magnitude_prune(src, 0.4)
    torch.save(src.state_dict(), tmp_path / "pruned.pt")
    fresh = tiny(1)
    load_pruned_state_dict(fresh, torch.load(tmp_path / "pruned.pt"))
    src.eval(), fresh.eval()
    assert torch.equal(fresh(x4()), src(x4()))
    assert all(torch.equal(a, b) for a, b in zip(mask_of(fresh).values(), mask_of(src).values()))
    assert sparsity(fresh) == sparsity(src)
    opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    train_steps(fresh, opt, 3)
    assert sparsity(fresh).zeros == sparsity(src).zeros == round(0.4 * TINY_TOTAL)
    assert not torch.equal(fresh.fc.weight_orig, src.fc.weight_orig)  # it did train


def test_load_plain_state_dict_into_pruned_model_removes_pruning():
    plain = tiny(1)
    pruned = tiny(2)
    global_magnitude_prune(pruned, 0.5)
    load_pruned_state_dict(pruned, plain.state_dict())
    assert not is_pruned(pruned)
    x = x4()
    plain.eval(), pruned.eval()
    assert torch.equal(plain(x), pruned(x))


# --------------------------------------------------------------------------- tracker

def test_sparsity_tracker_records_one_value_per_epoch_and_resumes():
    net = tiny()
    tracker = SparsityTracker(per_layer=True)
    assert isinstance(tracker, Callback)
    trainer = pytypes.SimpleNamespace(epoch=0, history=[])
    global_magnitude_prune(net, 0.1)
    tracker.on_fit_start(trainer, net)
    amounts = [0.2, 0.3, 0.4]
    records = []
    for epoch, amount in enumerate(amounts, start=1):
        global_magnitude_prune(net, amount)  # pretend the epoch pruned more
        record = {"epoch": epoch, "train_loss": 1.0}
        tracker.on_epoch_end(trainer, net, record)
        records.append(record)
    expected = [round(a * TINY_TOTAL) / TINY_TOTAL for a in [0.1] + amounts]
    assert tracker.history == expected
    assert [r["sparsity"] for r in records] == expected[1:]
    assert tracker.epochs == [0, 1, 2, 3]
    assert len(tracker.per_layer_history) == 4
    assert set(tracker.per_layer_history[-1]) == {"conv1", "conv2", "fc"}

    state = tracker.state_dict()
    tracker.history.append(99.0)  # the saved state is a copy
    assert len(state["history"]) == 4

    resumed = SparsityTracker(per_layer=True)
    resumed.load_state_dict(state)
    resumed.on_fit_start(trainer, net)  # a resumed run does not add another epoch-0 value
    assert resumed.history == expected
    rec = {"epoch": 4}
    resumed.on_epoch_end(trainer, net, rec)
    assert resumed.history == expected + [expected[-1]]
    assert resumed.epochs == [0, 1, 2, 3, 4]
    assert rec["sparsity"] == expected[-1]


def test_sparsity_tracker_fresh_run_without_pruning():
    tracker = SparsityTracker(key="w_sparsity")
    net = tiny()
    tracker.on_fit_start(None, net)
    rec = {}
    tracker.on_epoch_end(None, net, rec)
    assert tracker.history == [0.0, 0.0] and rec == {"w_sparsity": 0.0}
    assert tracker.epochs == [0, 1] and tracker.per_layer_history == []


def test_reports_render():
    net = tiny()
    rep = global_magnitude_prune(net, 0.3)
    text = str(rep)
    assert f"{rep.newly_pruned:,}" in text and "1,528" in text and f"{rep.global_sparsity:.2%}" in text
    d = rep.to_dict()
    assert d["amount"] == 0.3 and d["zeros"] == round(0.3 * TINY_TOTAL) and not d["incremental"]
    rows = sparsity(net).rows()
    assert [r["layer"] for r in rows] == ["conv1", "conv2", "fc"]
    assert sum(r["zeros"] for r in rows) == rep.zeros


def test_sparsity_tracker_with_the_real_trainer_and_resume(tmp_path):
    training = pytest.importorskip("cifarkit.training")
    from cifarkit.resume import Checkpoint
    from cifarkit.loader import TensorLoader

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(16) % 10

    def run(epochs, resume_from=None):
        net = tiny(0)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        global_magnitude_prune(net, 0.3)  # same structure as the checkpointed model
        tracker = SparsityTracker()
        trainer = training.Trainer(max_epochs=epochs, device="cpu", precision="32", progress=False,
                                   log=False, callbacks=[tracker, Checkpoint(tmp_path / "ck.pt")])
        loader = TensorLoader(x, y, batch_size=8, shuffle=True, device="cpu")
        trainer.fit(net, loader, optimizer=opt, resume_from=resume_from)
        return net, tracker, trainer

    net, tracker, trainer = run(2)
    expected = round(0.3 * TINY_TOTAL) / TINY_TOTAL
    assert tracker.history == [expected] * 3 and tracker.epochs == [0, 1, 2]
    assert [r["sparsity"] for r in trainer.history.records] == [expected] * 2
    net, tracker, trainer = run(3, resume_from=tmp_path / "ck.pt")
    assert tracker.history == [expected] * 4 and tracker.epochs == [0, 1, 2, 3]


def test_unseen_weights_counts_taps_that_only_read_padding():
    import torch.nn as nn

    from cifarkit.pruning import unseen_weights
    # a 3x3 conv (padding 1) on a 1x1 input: only the centre tap reads the pixel
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4, 2))
    r = unseen_weights(model, image_size=1)
    assert r["per_layer"]["0"] == (3 * 4 * 8, 3 * 4 * 9)
    assert r["per_layer"]["2"] == (0, 8)
    # on a 2x2 input every tap of a stride-1 conv reads some pixel
    model2 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert unseen_weights(model2, image_size=2)["unseen"] == 0
    # a stride-2 conv on 2x2 -> 1x1 output: rows -1, 0, 1 -> taps 1, 2 live -> 4 of 9 live
    model3 = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Flatten())
    assert unseen_weights(model3, image_size=2, channels=1)["per_layer"]["0"] == (5, 9)


def test_resnet18_imagenet_stem_wastes_most_of_layer4_on_cifar():
    import cifarkit as ck
    imagenet = ck.unseen_weights(ck.ResNetForCifar(stem="imagenet"))
    cifar = ck.unseen_weights(ck.ResNetForCifar(stem="cifar"))
    assert 0.6 < imagenet["fraction"] < 0.64          # about 62% of conv + linear weights
    assert imagenet["per_layer"]["body.layer4.1.conv2"][0] == 512 * 512 * 8
    assert cifar["unseen"] == 0


def test_unseen_share_is_the_share_of_removed_weights_that_only_read_padding():
    import torch.nn as nn
    import torch.nn.utils.prune as prune

    from cifarkit.course.lesson03 import unseen_share
    from cifarkit.pruning import unseen_weights
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(1, 2))
    masks = {"0": unseen_weights(model, image_size=1, channels=1)["masks"]["0"]}  # 8 of the 9 taps read padding
    mask = torch.zeros(1, 1, 3, 3)
    mask[0, 0, 0, 0] = 1.0  # keep one corner tap (unseen); remove the other eight, the centre among them
    prune.custom_from_mask(model[0], "weight", mask)
    assert unseen_share(model, masks) == pytest.approx(7 / 8)
    prune.remove(model[0], "weight")
    prune.custom_from_mask(model[0], "weight", torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="remove no weight"):
        unseen_share(model, masks)
