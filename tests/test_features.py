import pytest
import torch
import torch.nn as nn

from cifarkit import TensorLoader, Trainer, seed_everything
from cifarkit.features import extract_features, split_head

from conftest import random_images


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.conv(x))


def frozen_net():
    seed_everything(0)
    net = Net()
    for p in net.conv.parameters():
        p.requires_grad_(False)
    net.conv.eval()
    return net


def test_split_head_shares_modules_and_drops_the_head():
    net = frozen_net()
    backbone, head = split_head(net)
    assert head is net.fc and backbone.conv is net.conv and isinstance(backbone.fc, nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(head(backbone(x)), net(x))
    assert isinstance(net.fc, nn.Linear), "the original model keeps its head"
    with pytest.raises(ValueError):
        split_head(net, "classifier")


def test_cached_head_training_matches_the_uncached_loop():
    x, y = random_images(192)
    # uncached: the frozen backbone runs inside every step (BatchNorm kept in eval mode)
    net = frozen_net()
    train = TensorLoader(x, y, 32, shuffle=True, seed=7)
    test = TensorLoader(x, y, 64)

    opt = torch.optim.SGD(net.fc.parameters(), lr=0.1)

    def keep_eval(module, inputs):  # Trainer calls model.train(); the frozen BatchNorm must stay in eval
        module.train(False)
    net.conv.register_forward_pre_hook(keep_eval)
    uncached = Trainer(3, precision="32", progress=False, log=False).fit(
        net, train, test, optimizer=opt)

    net2 = frozen_net()
    backbone, head = split_head(net2)
    f_train = extract_features(backbone, TensorLoader(x, y, 64), precision="32", progress=False)
    f_test = extract_features(backbone, test, precision="32", progress=False)
    assert f_train.features.shape == (192, 32)
    cached = Trainer(3, precision="32", progress=False, log=False).fit(
        head, f_train.loader(32, shuffle=True, seed=7), f_test.loader(64),
        optimizer=torch.optim.SGD(head.parameters(), lr=0.1))
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert cached[key] == pytest.approx(uncached[key], abs=1e-4), key
    torch.testing.assert_close(net2.fc.weight, net.fc.weight, atol=1e-5, rtol=1e-4)


def test_augmenting_loader_is_refused():
    x, y = random_images(8)
    with pytest.raises(ValueError, match="augmentation"):
        extract_features(frozen_net(), TensorLoader(x, y, 4, augment=True), progress=False)
