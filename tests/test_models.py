import copy
import hashlib
import io
import os
import time
import urllib.error

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import Bottleneck

import cifarkit.download as download
import cifarkit.weights as weights
from cifarkit.freezing import frozen_norm_layers, set_frozen_bn_eval, unfreeze, unfreeze_all
from cifarkit.models import (CoveringConv2d, GatedBlock, GatedCNN, NoSkipBasicBlock, NoSkipBottleneck,
                             ResNetForCifar, SmallBlock, SmallResNet, cover_padding_taps,
                             remove_skip_connections, resnet152_transfer)
from cifarkit.weights import WeightsUnavailableError, apply_weights, imagenet_weights_path


pytestmark = pytest.mark.usefixtures("one_thread")


def images(n=2, seed=0, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache in tmp_path and a download that fails like an offline machine."""
    calls = []

    def no_network(url, dst, timeout=weights.DOWNLOAD_TIMEOUT_S):
        calls.append((url, str(dst), timeout))
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "_download", no_network)
    return calls


# ---------------------------------------------------------------------------------------------
# ResNetForCifar and weights
# ---------------------------------------------------------------------------------------------

def test_resnet_for_cifar_structure_and_outputs():
    torch.manual_seed(0)
    model = ResNetForCifar().eval()
    assert [n for n, _ in model.named_children()] == ["body", "head"]
    assert model.weights_source == "random"
    tv_keys = [k for k in torchvision.models.resnet18().state_dict() if not k.startswith("fc.")]
    assert list(model.body.state_dict()) == tv_keys
    assert [type(m) for m in model.head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (model.head[0].in_features, model.head[0].out_features, model.head[2].out_features) \
        == (512, 100, 10)
    assert n_params(model) == 11_228_822
    x = images()
    logits = model(x)
    assert logits.shape == (2, 10)
    model.softmax_output = True
    probs = model(x)
    assert torch.allclose(probs, logits.softmax(1))
    assert torch.allclose(probs.sum(1), torch.ones(2))
    assert not torch.allclose(logits.sum(1), torch.ones(2))


@pytest.mark.parametrize("in_ch, out_ch, kernel, stride, padding, side", [
    (8, 16, 3, 1, 1, 1),   # layer4 of the ImageNet stem at 32x32: 1x1 pixels, only the centre tap meets data
    (8, 16, 3, 2, 1, 2),   # layer4's first convolution: 2x2 at stride 2, one output pixel from 4 taps
    (8, 16, 3, 1, 1, 2),   # 2x2 at stride 1: every tap meets data, the ordinary path
    (8, 16, 1, 2, 0, 2),   # the 1x1 downsample
    (8, 16, 5, 1, 2, 1),   # a 5x5 kernel on 1x1 pixels
    (8, 16, (3, 1), 1, (1, 0), 1),
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_covering_conv_matches_the_full_convolution(in_ch, out_ch, kernel, stride, padding, side, channels_last):
    torch.manual_seed(0)
    plain = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding)
    covering = copy.deepcopy(plain)
    covering.__class__ = CoveringConv2d
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    plain, covering = plain.to(memory_format=fmt), covering.to(memory_format=fmt)
    x = torch.randn(4, in_ch, side, side).to(memory_format=fmt).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    out, out2 = plain(x), covering(x2)
    assert out.shape == out2.shape
    torch.testing.assert_close(out2, out)
    g = torch.randn_like(out)
    out.backward(g)
    out2.backward(g)
    torch.testing.assert_close(x2.grad, x.grad)
    torch.testing.assert_close(covering.weight.grad, plain.weight.grad)
    torch.testing.assert_close(covering.bias.grad, plain.bias.grad)
    if side == 1:  # the taps that meet only padding get exactly zero gradient, as in the full convolution
        kh, kw = covering.kernel_size
        ph, pw = covering.padding
        outer = torch.ones(kh, kw, dtype=torch.bool)
        outer[ph, pw] = False
        assert covering.weight.grad[:, :, outer].abs().max() == 0


def test_covering_conv_takes_the_cropped_path_only_where_the_window_covers_the_input(monkeypatch):
    calls = []
    monkeypatch.setattr(nn.Conv2d, "forward", lambda self, x: calls.append(tuple(x.shape[-2:])) or
                        F.conv2d(x, self.weight, self.bias, self.stride, self.padding))
    conv = CoveringConv2d(4, 4, 3, padding=1)
    conv(torch.randn(2, 4, 1, 1))
    assert calls == []  # cropped: nn.Conv2d.forward never ran
    conv(torch.randn(2, 4, 3, 3))
    assert calls == [(3, 3)]
    plain = ResNetForCifar()
    assert not any(type(m) is CoveringConv2d for m in plain.modules())  # the course's default
    model = cover_padding_taps(copy.deepcopy(plain))
    assert all(type(m) is CoveringConv2d for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model.state_dict().keys() == plain.state_dict().keys()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    losses = [F.cross_entropy(m(x), y) for m in (model, plain)]
    torch.testing.assert_close(losses[0], losses[1])
    for loss in losses:
        loss.backward()
    for (name, a), b in zip(model.named_parameters(), plain.parameters()):  # float rounding, nothing more
        assert (a.grad - b.grad).abs().max() <= 1e-4 * b.grad.abs().max(), name


def test_imagenet_read_from_hub_cache_without_download(offline, tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = imagenet_weights_path("resnet18")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = ResNetForCifar(weights="imagenet").eval()
    assert model.weights_source == "imagenet"
    assert offline == []  # the cached file was used, nothing was downloaded
    assert torch.equal(model.body.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    assert torch.equal(model.body.bn1.running_var, reference.bn1.running_var)
    reference.eval()
    x = images()
    expected = torch.flatten(nn.Sequential(*list(reference.children())[:-1])(x), 1)
    assert torch.allclose(model.body(x), expected, atol=1e-6)


def test_imagenet_offline_raises_clear_error_fast(offline, tmp_path):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        ResNetForCifar(weights="imagenet")
    assert time.perf_counter() - start < 10
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg
    assert "internet" in msg and "weights='/path/to/resnet18-f37072fd.pth'" in msg
    assert "weights='auto' falls back" in msg
    assert "Name or service not known" in msg
    assert len(offline) == 1 and offline[0][0].endswith("resnet18-f37072fd.pth")
    assert offline[0][2] <= 30  # any download is bounded by a socket timeout


def test_auto_warns_and_falls_back_to_random(offline):
    with pytest.warns(UserWarning, match="random initialisation.*resnet18-f37072fd.pth") as rec:
        model = ResNetForCifar(weights="auto")
    assert "falls back" not in str(rec[0].message)
    assert model.weights_source == "random (imagenet unavailable)"
    assert model(images()).shape == (2, 10)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_uses_timeout_checks_hash_and_leaves_no_partial_file(monkeypatch, tmp_path):
    payload = b"not really weights" * 1000
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    seen = {}

    def fake_urlopen(url, timeout=None):
        seen["timeout"] = timeout
        return FakeResponse(payload)

    monkeypatch.setattr(download, "resolve_host",
                        lambda host, timeout: seen.setdefault("host", host))
    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(download.urllib.request, "getproxies", lambda: {})
    good = tmp_path / f"net-{prefix}.pth"
    weights._download(f"https://example.invalid/{good.name}", good, timeout=7.0)
    assert good.read_bytes() == payload
    assert seen == {"timeout": 7.0, "host": "example.invalid"}

    bad = tmp_path / "sub" / "net-deadbeef.pth"
    with pytest.raises(RuntimeError, match="hash prefix"):
        weights._download(f"https://example.invalid/{bad.name}", bad)
    assert os.listdir(bad.parent) == []  # neither the file nor a .part leftover

    def failing(url, timeout=None):
        raise TimeoutError("timed out")

    monkeypatch.setattr(download.urllib.request, "urlopen", failing)
    with pytest.raises(TimeoutError):
        weights._download(f"https://example.invalid/{bad.name}", bad)
    assert os.listdir(bad.parent) == []


def test_stalled_name_lookup_is_cut_off(monkeypatch):
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: time.sleep(3))
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="example.invalid"):
        download.resolve_host("example.invalid", 0.2)
    assert time.perf_counter() - start < 2


def test_whole_model_state_dict_round_trip(tmp_path):
    torch.manual_seed(2)
    trained = ResNetForCifar().eval()
    path = tmp_path / "model.pt"
    torch.save(trained.state_dict(), path)
    torch.manual_seed(3)
    fresh = ResNetForCifar(weights=path).eval()
    assert fresh.weights_source == f"file:{path}"
    x = images()
    assert torch.equal(fresh(x), trained(x))
    # a checkpoint-style wrapper and a DataParallel prefix are both understood
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"model": {f"module.{k}": v for k, v in trained.state_dict().items()},
                "epoch": 3}, wrapped)
    assert torch.equal(ResNetForCifar(weights=str(wrapped)).eval()(x), trained(x))


def test_backbone_state_dict_file_loads_body_only(tmp_path):
    torch.manual_seed(4)
    tv = torchvision.models.resnet18()  # fc is 1000-way and must be ignored
    path = tmp_path / "backbone.pth"
    torch.save(tv.state_dict(), path)
    model = ResNetForCifar(weights=path)
    for k, v in model.body.state_dict().items():
        assert torch.equal(v, tv.state_dict()[k]), k
    assert model.head[2].out_features == 10


def test_bad_weights_arguments(tmp_path):
    with pytest.raises(ValueError, match="imagnet"):
        ResNetForCifar(weights="imagnet")
    with pytest.raises(TypeError, match="int"):
        ResNetForCifar(weights=3)
    wrong = tmp_path / "wrong.pt"
    torch.save(nn.Linear(3, 4).state_dict(), wrong)
    with pytest.raises(ValueError, match="missing keys"):
        ResNetForCifar(weights=wrong)
    shapes = tmp_path / "shapes.pt"
    state = ResNetForCifar().state_dict()
    state["head.2.weight"] = torch.zeros(7, 100)
    state["head.2.bias"] = torch.zeros(7)
    torch.save(state, shapes)
    with pytest.raises(ValueError, match="head.2.weight: \\(7, 100\\) vs \\(10, 100\\)"):
        ResNetForCifar(weights=shapes)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a torch file")
    with pytest.raises(ValueError, match="could not read"):
        ResNetForCifar(weights=junk)


# ---------------------------------------------------------------------------------------------
# ResNet-152 transfer and skip ablation
# ---------------------------------------------------------------------------------------------

def test_resnet152_transfer_frozen_bn_and_default_ablation(offline):
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="resnet152"):
        model = resnet152_transfer(num_classes=7, weights="auto")
    assert model.weights_source == "random (imagenet unavailable)"
    assert n_params(model) == 58_164_298 - 2049 * 3  # 10 -> 7 classes
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    assert "bn1" in frozen_norm_layers(model) and "layer4.2.bn3" in frozen_norm_layers(model)
    before = model.layer2[0].bn1.running_mean.clone()
    model.train()  # what a Trainer does every epoch
    out = model(images(1))  # BatchNorm in train mode would reject one value per channel at layer4
    assert out.shape == (1, 7)
    assert torch.equal(model.layer2[0].bn1.running_mean, before)
    assert model.fc.training

    names = remove_skip_connections(model)
    assert names == ["layer1.2", "layer2.5", "layer3.10", "layer3.20", "layer3.30"]
    assert all(isinstance(model.get_submodule(n), NoSkipBottleneck) for n in names)
    assert unfreeze(model, names) == 5 * 9  # 3 convs + 3 BatchNorms (weight, bias) each
    assert not any(n.startswith("layer3.10.") for n in frozen_norm_layers(model))
    assert "layer3.11.bn1" in frozen_norm_layers(model)
    with pytest.raises(ValueError, match="num_classes"):
        resnet152_transfer(num_classes=0, weights=None)


class TwoBottlenecks(nn.Module):
    def __init__(self):
        super().__init__()
        down = nn.Sequential(nn.Conv2d(64, 128, 1, stride=2, bias=False), nn.BatchNorm2d(128))
        self.layer1 = nn.Sequential(Bottleneck(64, 16), Bottleneck(64, 32, stride=2,
                                                                   downsample=down))

    def forward(self, x):
        return self.layer1(x)


def randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def basic_main(b, x):
    return b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x)))))


def bottleneck_main(b, x):
    x = F.relu(b.bn1(b.conv1(x)))
    x = F.relu(b.bn2(b.conv2(x)))
    return b.bn3(b.conv3(x))


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
def test_removing_skips_drops_exactly_the_identity(kind):
    torch.manual_seed(6)
    if kind == "basic":
        model, main, x = torchvision.models.resnet18(num_classes=10), basic_main, images(2)
        blocks = [("layer1", 1), ("layer2", 0)]  # layer2.0 has a downsample shortcut
    else:
        model, main = TwoBottlenecks(), bottleneck_main
        x = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(0))
        blocks = [("layer1", 0), "layer1.1"]
    randomize_bn(model)
    model.eval()
    original = copy.deepcopy(model)
    state = copy.deepcopy(model.state_dict())
    names = remove_skip_connections(model, blocks)
    assert names == (["layer1.1", "layer2.0"] if kind == "basic" else ["layer1.0", "layer1.1"])
    for k, v in model.state_dict().items():  # reinit=False keeps every weight
        assert torch.equal(v, state[k]), k
    inputs = {}  # what each chosen block receives inside the original model
    hooks = [original.get_submodule(n).register_forward_pre_hook(
        lambda m, args, n=n: inputs.__setitem__(n, args[0])) for n in names]
    with torch.no_grad():
        original(x)
        for h in hooks:
            h.remove()
        for name in names:
            old, new, inp = original.get_submodule(name), model.get_submodule(name), inputs[name]
            identity = old.downsample(inp) if old.downsample is not None else inp
            branch = main(old, inp)
            assert torch.allclose(old(inp), F.relu(branch + identity), atol=1e-5)
            assert torch.allclose(new(inp), F.relu(branch), atol=1e-5)
            assert not torch.allclose(new(inp), old(inp), atol=1e-3)
        assert not torch.allclose(model(x), original(x), atol=1e-4)
    expected_cls = NoSkipBasicBlock if kind == "basic" else NoSkipBottleneck
    assert all(type(model.get_submodule(n)) is expected_cls for n in names)
    # idempotent: a second call changes nothing
    assert remove_skip_connections(model, blocks) == names


def test_reinit_resets_only_the_chosen_blocks():
    torch.manual_seed(7)
    model = torchvision.models.resnet18(num_classes=10)
    randomize_bn(model)
    state = copy.deepcopy(model.state_dict())
    remove_skip_connections(model, ["layer3.1"], reinit=True)
    new = model.state_dict()
    assert not torch.equal(new["layer3.1.conv1.weight"], state["layer3.1.conv1.weight"])
    assert torch.equal(new["layer3.1.bn2.running_var"], torch.ones(256))
    assert torch.equal(new["layer3.1.bn2.weight"], torch.ones(256))
    changed = {k.rsplit(".", 1)[0] for k in new if not torch.equal(new[k], state[k])}
    assert changed == {"layer3.1.conv1", "layer3.1.conv2", "layer3.1.bn1", "layer3.1.bn2"}


def test_remove_skip_connections_rejects_bad_blocks():
    model = torchvision.models.resnet18(num_classes=10)
    with pytest.raises(ValueError, match="layer5"):
        remove_skip_connections(model, [("layer5", 0)])
    with pytest.raises(ValueError, match=r"layer1 has 2 blocks.*index 9"):
        remove_skip_connections(model, [("layer1", 9)])
    with pytest.raises(ValueError, match="layer1 has 2 blocks.*index 2"):
        remove_skip_connections(model)  # the ResNet-152 defaults do not fit a ResNet-18
    with pytest.raises(ValueError, match="'fc'"):
        remove_skip_connections(model, [("fc", 0)])
    with pytest.raises(ValueError, match="layer1.x"):
        remove_skip_connections(model, ["layer1.x"])
    with pytest.raises(TypeError, match="Conv2d"):
        remove_skip_connections(nn.ModuleDict({"l": nn.Sequential(nn.Conv2d(3, 3, 1))}), [("l", 0)])
    # nothing was modified by the failed calls
    assert not any(isinstance(m, NoSkipBasicBlock) for m in model.modules())
    with pytest.raises(ValueError, match="no submodule 'layer9'"):
        unfreeze(model, ["layer9"])


def test_ablated_blocks_train_with_their_own_optimizer():
    torch.manual_seed(8)
    model = torchvision.models.resnet18(num_classes=10)
    for p in model.parameters():
        p.requires_grad_(False)
    names = remove_skip_connections(model, [("layer1", 1), ("layer2", 0)])
    # layer1.1: 2 convs + 2 BNs = 6 tensors; layer2.0: 6 + downsample conv and BN = 9; fc: 2
    assert unfreeze(model, names + ["fc"]) == 6 + 9 + 2
    set_frozen_bn_eval(model)
    assert "layer1.0.bn1" in frozen_norm_layers(model)
    assert "layer1.1.bn1" not in frozen_norm_layers(model)

    # The seed's bug: an optimizer over another model's parameters trains nothing here.
    other = torchvision.models.resnet18(num_classes=10)
    before = copy.deepcopy(model.state_dict())
    wrong = torch.optim.SGD(other.parameters(), lr=0.1)
    x, y = images(4, seed=1), torch.tensor([0, 1, 2, 3])
    model.train()
    F.cross_entropy(model(x), y).backward()
    wrong.step()
    assert torch.equal(model.layer1[1].conv1.weight, before["layer1.1.conv1.weight"])

    model.zero_grad()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    after = model.state_dict()
    for k in ["layer1.1.conv1.weight", "layer1.1.bn2.weight", "layer2.0.conv2.weight",
              "fc.weight", "layer1.1.bn1.running_mean"]:
        assert not torch.equal(after[k], before[k]), k
    for k in ["conv1.weight", "layer1.0.conv1.weight", "layer3.0.bn1.running_mean",
              "layer2.0.downsample.0.weight", "bn1.running_var"]:
        assert torch.equal(after[k], before[k]), k
    assert model.layer2[0].downsample[0].weight.grad is None  # unused shortcut gets no gradient
    unfreeze_all(model)
    assert frozen_norm_layers(model) == []


# ---------------------------------------------------------------------------------------------
# SmallResNet
# ---------------------------------------------------------------------------------------------

def test_small_resnet_shapes_depth_and_equal_parameters():
    torch.manual_seed(9)
    res, plain = SmallResNet(3, residual=True), SmallResNet(3, residual=False)
    assert res.depth == 20 and SmallResNet(9).depth == 56
    assert n_params(res) == n_params(plain) == 269_722
    assert [n for n, _ in res.named_children()] == ["stem", "stage1", "stage2", "stage3", "fc"]
    out = res(images(2))
    assert out.shape == (2, 10)
    assert SmallResNet(1, widths=(8, 16), num_classes=4)(images(2)).shape == (2, 4)
    plain.load_state_dict(res.state_dict())  # same weights, same names
    res.eval(), plain.eval()
    with torch.no_grad():
        assert not torch.allclose(res(images(2)), plain(images(2)))
    for bad in [dict(depth_per_stage=0), dict(widths=(16, 0, 64)), dict(widths=(32, 16)),
                dict(num_classes=0), dict(depth_per_stage=2.0)]:
        with pytest.raises(ValueError):
            SmallResNet(**bad)


def test_small_block_shortcut_is_subsample_and_zero_pad():
    torch.manual_seed(10)
    block = SmallBlock(4, 8, stride=2, residual=True).eval()
    randomize_bn(block)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        main = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        shortcut = torch.zeros(2, 8, 4, 4)
        shortcut[:, :4] = x[:, :, ::2, ::2]
        assert torch.allclose(block(x), F.relu(main + shortcut), atol=1e-6)
        block.residual = False
        assert torch.allclose(block(x), F.relu(main), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Gated CNN
# ---------------------------------------------------------------------------------------------

def test_gated_block_arithmetic_with_hand_set_gates():
    torch.manual_seed(11)
    block = GatedBlock(4, 5, n_convs=3)
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.weight[2, 1] = 3.0  # gate 2 also reads the mean of input channel 1
        block.gate.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # gate 1 is cut off by the ReLU
    x = torch.randn(2, 4, 6, 6)
    out = block(x)
    assert out.shape == (2, 5, 6, 6)
    g2 = 2.0 + 3.0 * x[:, 1].mean(dim=(1, 2))
    expected_gates = torch.stack([torch.full((2,), 0.5), torch.zeros(2), g2.clamp(min=0)], 1)
    assert block.last_gates.shape == (2, 3) and not block.last_gates.requires_grad
    assert torch.allclose(block.last_gates, expected_gates, atol=1e-6)
    manual = sum(expected_gates[:, i, None, None, None] * F.relu(block.convs[i](x))
                 for i in range(3))
    assert torch.allclose(out, manual, atol=1e-5)
    out.sum().backward()
    assert block.convs[0].weight.grad.abs().sum() > 0
    assert block.convs[1].weight.grad.abs().sum() == 0  # a zero gate passes no gradient
    assert block.gate.bias.grad[0] != 0
    with pytest.raises(ValueError, match="n_convs"):
        GatedBlock(4, 5, n_convs=0)


def test_gated_cnn_shapes_gates_and_validation():
    torch.manual_seed(12)
    model = GatedCNN()
    assert n_params(model) == 11_872_098
    x = images(2)
    assert model(x).shape == (2, 10)
    blocks = model.gated_blocks
    assert len(blocks) == 5
    assert [len(b.convs) for b in blocks] == [3] * 5
    assert [b.last_gates.shape for b in blocks] == [(2, 3)] * 5
    assert [b.convs[0].out_channels for b in blocks] == [64, 128, 256, 512, 512]

    small = GatedCNN(widths=(8, 8, 16, 16, 32), convs_per_block=2, hidden=16, num_classes=4)
    small.train()
    before = small.features[0].bn.running_mean.clone()
    gates = small.gate_values(x)
    assert gates.shape == (5, 2)
    assert torch.allclose(gates[0], small.gated_blocks[0].last_gates.mean(0))
    assert small.training and torch.equal(small.features[0].bn.running_mean, before)
    assert small(x).shape == (2, 4)
    for bad in [dict(widths=(8, 8, 8, 8)), dict(widths=(8, 8, 8, 8, 0)), dict(dropout=1.0),
                dict(hidden=0), dict(convs_per_block=0)]:
        with pytest.raises(ValueError):
            GatedCNN(**bad)


def test_open_gate_init_starts_every_gate_at_one_with_the_same_convolutions():
    torch.manual_seed(13)
    default = GatedCNN(widths=(8, 8, 16, 16, 32), hidden=16)
    torch.manual_seed(13)
    opened = GatedCNN(widths=(8, 8, 16, 16, 32), hidden=16, gate_init="open")
    assert torch.equal(opened.gate_values(images(3)), torch.ones(5, 3))
    for blk in opened.gated_blocks:
        assert torch.equal(blk.last_gates, torch.ones(3, 3))
        assert torch.count_nonzero(blk.gate.weight) == 0
    for a, b in zip(default.gated_blocks, opened.gated_blocks):
        assert torch.equal(a.convs[0].weight, b.convs[0].weight)  # same random draws
        assert not torch.equal(a.gate.bias, b.gate.bias)
    opened(images(2)).sum().backward()
    assert opened.gated_blocks[0].gate.weight.grad.abs().sum() > 0  # open gates still learn
    with pytest.raises(ValueError, match="gate_init"):
        GatedCNN(gate_init="closed")


def test_apply_weights_on_a_custom_model(tmp_path):
    model = SmallResNet(1, widths=(4, 8))
    assert apply_weights(model, None, "resnet18") == "random"
    path = tmp_path / "small.pt"
    torch.save(model.state_dict(), path)
    other = SmallResNet(1, widths=(4, 8))
    assert apply_weights(other, path, "resnet18") == f"file:{path}"
    assert torch.equal(other.fc.weight, model.fc.weight)
    with pytest.raises(ValueError, match="unknown torchvision architecture"):
        imagenet_weights_path("resnet19")


def test_torchvision_checkpoint_into_a_model_with_a_new_fc(tmp_path):
    # what resnet152_transfer does with the downloaded resnet152-394f9c45.pth, on a ResNet-18
    torch.manual_seed(13)
    imagenet_like = torchvision.models.resnet18()  # 1000-class fc
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(imagenet_like.state_dict(), path)
    model = torchvision.models.resnet18(num_classes=10)
    fc_before = model.fc.weight.clone()
    assert apply_weights(model, path, "resnet18") == f"file:{path}"
    assert torch.equal(model.layer4[1].conv2.weight, imagenet_like.layer4[1].conv2.weight)
    assert torch.equal(model.fc.weight, fc_before)
    state = imagenet_like.state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, path)
    with pytest.raises(ValueError, match="neither the whole model.*layer1.0.conv1.weight"):
        apply_weights(model, path, "resnet18")


def test_cifar_stem_and_auto_stem_from_a_file(tmp_path):
    import torch
    import cifarkit as ck
    from cifarkit.models import checkpoint_stem
    model = ck.ResNetForCifar(stem="cifar")
    assert model.body.conv1.kernel_size == (3, 3) and isinstance(model.body.maxpool, torch.nn.Identity)
    path = tmp_path / "cifar.pt"
    torch.save(model.state_dict(), path)
    assert checkpoint_stem(path) == "cifar"
    again = ck.ResNetForCifar(weights=path, stem="auto")
    assert again.stem == "cifar" and torch.equal(again.body.conv1.weight, model.body.conv1.weight)
    torch.save(ck.ResNetForCifar().state_dict(), tmp_path / "imagenet.pt")
    assert ck.ResNetForCifar(weights=tmp_path / "imagenet.pt", stem="auto").stem == "imagenet"
    with pytest.raises(ValueError, match="stem must be one of"):
        ck.ResNetForCifar(stem="big")
