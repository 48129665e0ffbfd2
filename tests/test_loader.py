import pytest
import torch
import torch.nn.functional as F

from cifarkit.dataset import CIFAR10_MEAN, CIFAR10_STD, stratified_indices
from cifarkit.loader import TensorLoader, random_crop, random_cutout, random_flip

from conftest import random_images


def test_len_and_drop_last():
    x, y = random_images(130)
    assert len(TensorLoader(x, y, batch_size=64)) == 3
    assert len(TensorLoader(x, y, batch_size=64, drop_last=True)) == 2
    sizes = [len(b[1]) for b in TensorLoader(x, y, batch_size=64)]
    assert sizes == [64, 64, 2]
    assert sum(len(b[1]) for b in TensorLoader(x, y, batch_size=64, drop_last=True)) == 128


def test_unshuffled_batches_normalise_exactly():
    x, y = random_images(10)
    xb, yb = next(iter(TensorLoader(x, y, batch_size=10)))
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(xb, (x.float() / 255 - mean) / std, rtol=1e-5, atol=1e-5)
    assert torch.equal(yb, y) and yb.dtype == torch.int64


def test_shuffle_is_reproducible_and_covers_everything():
    x, y = random_images(100)
    order = lambda seed: torch.cat([b[1] for b in TensorLoader(x, torch.arange(100), 32, shuffle=True, seed=seed,
                                                                      num_classes=None)])
    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    assert sorted(order(1).tolist()) == list(range(100))
    loader = TensorLoader(x, torch.arange(100), 32, shuffle=True, seed=1, num_classes=None)
    first, second = [torch.cat([b[1] for b in loader]) for _ in range(2)]
    assert not torch.equal(first, second), "each epoch draws a new permutation"


def test_state_dict_replays_the_same_epoch():
    x, _ = random_images(64)
    loader = TensorLoader(x, torch.arange(64), 16, shuffle=True, augment=True, seed=3, num_classes=None)
    list(loader)
    state = loader.state_dict()
    a = [b[0] for b in loader]
    loader.load_state_dict(state)
    b = [b[0] for b in loader]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_flip_mirrors_exactly():
    x, _ = random_images(64)
    g = torch.Generator().manual_seed(0)
    out = random_flip(x, g)
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54  # about half are mirrored


def test_crop_stays_in_bounds_and_matches_padding():
    x = torch.full((50, 3, 32, 32), 7, dtype=torch.uint8)
    out = random_crop(x, 4, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= {0, 7}
    # every window lies inside the padded image: at most 4 zero rows and 4 zero columns
    zero_rows = (out[:, 0] == 0).all(dim=2).sum(dim=1)
    zero_cols = (out[:, 0] == 0).all(dim=1).sum(dim=1)
    assert zero_rows.max() <= 4 and zero_cols.max() <= 4
    assert (zero_rows + zero_cols).sum() > 0  # some offsets are non-zero


def test_crop_is_a_shifted_window():
    x, _ = random_images(20)
    out = random_crop(x, 4, torch.Generator().manual_seed(5))
    padded = F.pad(x, (4, 4, 4, 4))
    for o, p in zip(out, padded):
        hits = [(r, c) for r in range(9) for c in range(9) if torch.equal(o, p[:, r:r + 32, c:c + 32])]
        assert hits, "each output must equal some 32x32 window of the padded image"


def test_resize_and_channels_last():
    x, y = random_images(8)
    xb, _ = next(iter(TensorLoader(x, y, 8, resize=64, memory_format=torch.channels_last)))
    assert xb.shape == (8, 3, 64, 64)
    assert xb.is_contiguous(memory_format=torch.channels_last)


def test_stratified_subset():
    y = torch.arange(1000) % 10
    idx = stratified_indices(y, 105, seed=0)
    counts = torch.bincount(y[idx], minlength=10)
    assert len(idx) == 105 and counts.max() - counts.min() <= 1
    assert torch.equal(idx, stratified_indices(y, 105, seed=0))
    assert not torch.equal(idx, stratified_indices(y, 105, seed=1))
    x, _ = random_images(1000)
    loader = TensorLoader(x, y, 50, n=200)
    assert loader.num_samples == 200 and len(loader) == 4
    assert torch.bincount(loader.y, minlength=10).tolist() == [20] * 10


def test_bad_input_is_rejected():
    x, y = random_images(4)
    with pytest.raises(TypeError):
        TensorLoader(x.float(), y)
    with pytest.raises(ValueError):
        TensorLoader(x, y[:3])
    with pytest.raises(ValueError):
        TensorLoader(x, y, batch_size=0)


def test_reflect_crop_is_a_window_of_the_mirrored_image_without_black_borders():
    x, _ = random_images(20)
    x = x.clamp(min=1)                                   # no zero pixels of its own
    out = random_crop(x, 2, torch.Generator().manual_seed(6), pad_mode="reflect")
    assert out.dtype == torch.uint8 and (out > 0).all()  # zero padding would leave black strips
    padded = F.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    for o, p in zip(out, padded):
        assert any(torch.equal(o, p[:, r:r + 32, c:c + 32]) for r in range(5) for c in range(5))
    with pytest.raises(ValueError, match="pad_mode"):
        random_crop(x, 2, torch.Generator(), pad_mode="wrap")
    with pytest.raises(ValueError, match="pad_mode"):
        TensorLoader(x, torch.zeros(20, dtype=torch.int64), pad_mode="circular")


def test_cutout_blanks_one_clipped_square_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 3, 32, 32) + 1.0  # no zeros before the cutout
    out = random_cutout(x, 8, g)
    blank = out == 0
    assert blank.all(1).eq(blank.any(1)).all(), "a square blanks every channel of its pixels"
    blank = blank[:, 0]
    rows, cols = blank.any(2), blank.any(1)
    for b in range(len(x)):
        h, w = int(rows[b].sum()), int(cols[b].sum())
        assert 1 <= h <= 8 and 1 <= w <= 8
        assert blank[b].sum() == h * w, "the blanked pixels form one rectangle"
        assert torch.equal(out[b][:, ~blank[b]], x[b][:, ~blank[b]]), "pixels outside it are untouched"
    sizes = blank.flatten(1).sum(1)
    assert (sizes == 64).float().mean() > 0.4 and (sizes < 64).any(), "full squares inside, clipped at borders"
    assert torch.equal(random_cutout(x, 8, torch.Generator().manual_seed(0)), out), "seeded"


def test_loader_cutout_fills_with_the_mean_colour_only_when_augmenting():
    x, y = random_images(64, seed=1)
    plain = TensorLoader(x, y, 64, augment=True, crop_padding=0, seed=3)
    cut = TensorLoader(x, y, 64, augment=True, crop_padding=0, cutout=6, seed=3)
    a, _ = next(iter(plain))
    b, _ = next(iter(cut))
    changed = (a != b).any(1)
    assert changed.flatten(1).any(1).all(), "every image loses a square"
    assert torch.equal(b.masked_fill(changed[:, None], 0), b), "cut pixels hold the normalised mean, 0"
    assert torch.equal(cut.transform(x[:8], train=False), plain.transform(x[:8], train=False))
    for bad in (-1, 33, 2.5, True):
        with pytest.raises(ValueError, match="cutout"):
            TensorLoader(x, y, 8, cutout=bad)
