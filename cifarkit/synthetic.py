"""A generated, offline stand-in for CIFAR-10: ten classes of simple drawn shapes.

Why it exists
-------------
CIFAR-10 cannot always be downloaded (a laptop on a train, a locked-down lab machine). So that every
notebook still runs end to end, the kit can draw its own small image-classification problem with the
same layout as CIFAR-10: uint8 RGB images of shape ``3 x 32 x 32``, ten balanced classes, a training and
a test split. It is *not* CIFAR-10 and the numbers you get on it say nothing about CIFAR-10; the
returned `CifarData` has ``source="synthetic"`` so plots and result files say so.

What the images look like
-------------------------
Each image shows one large *main shape*, and the kind of shape is the label:

====  ==========  ==============================================================
 id   class       main shape
====  ==========  ==============================================================
 0    disc        a filled circle
 1    ring        a hollow circle (annulus) of random thickness
 2    square      a filled square
 3    frame       a hollow square outline of random thickness
 4    triangle    a filled equilateral triangle
 5    cross       a plus sign made of two bars of random thickness
 6    star        a five-pointed star with rounded tips
 7    stripes     a square patch of three parallel stripes
 8    checker     a 3 x 3 checkerboard patch (five filled cells)
 9    dots        a 3 x 3 grid of small round dots
====  ==========  ==============================================================

Some classes are filled outlines, some are thin-line versions of another class (ring/disc,
frame/square), and some are textures (stripes, checker, dots): a network has to look at edges,
corners, holes and repetition, the same low-level features it needs on real photographs.

So that the task is about *shape* and nothing easier, every image is randomised:

* Placement: the main shape gets a random position, size, rotation and, where it has lines, a random
  line thickness.
* Colour: the shape and the background each get a random brightness and a random tint. The two
  brightnesses always differ by at least `CONTRAST_MIN` (so the shape is visible), but which one is
  lighter is a coin flip and the tints are independent of the class. The average colour of an image
  therefore says (almost) nothing about its class: a classifier that only sees the mean RGB value
  stays near chance (10 %). The background also gets a soft colour gradient in a random direction.
* Clutter: behind the main shape, up to `CLUTTER_MAX` small, semi-transparent distractors drawn from
  the *same vocabulary* (little discs, rings, stars, checkers, ... of any class) and up to
  `STROKES_MAX` long thin strokes. "There is a ring somewhere" is not enough: the network has to find
  the big shape and ignore the small ones.
* Noise: every pixel gets random noise, with a strength that differs from image to image.

The result is a task with real but limited overlap between classes: with noise and clutter, a small,
thick ring looks much like a frame, and a rotated square like a triangle or a disc. A small
three-layer CNN (32-64-128 channels, Adam) trained on 5,000 images reaches roughly 65-85 % test
accuracy after two epochs, is far from perfect after one, and keeps improving for several more, so
learning curves show real progress. A model that scores 100 % here has not proved anything about
CIFAR-10; a model that cannot learn it at all most likely has a bug.

How the drawing works
---------------------
Every shape is described by a *signed distance function* (SDF): for each pixel, how far it is from
the shape's edge, negative inside. Each pixel's coordinates are moved into the image's own rotated,
shifted and scaled frame, the class's SDF is evaluated for all images of that class at once (tensor
operations: the only Python loops are over the ten shape kinds and the few clutter layers, never
over pixels or images), and the distance is turned into a coverage value in 0..1 with a one-pixel
soft edge (anti-aliasing) that blends the shape's colour over what is already there.

Difficulty is set by the module-level constants below: the size range of the main shape
(`MAIN_SCALE`), the brightness gap (`CONTRAST_MIN`), the amount, size and opacity of clutter
(`CLUTTER_MIN`/`CLUTTER_MAX`, `CLUTTER_SCALE`, `CLUTTER_ALPHA`, `STROKES_MAX`) and the noise strength
(`NOISE_STD`). They were tuned so that the learning curve described above holds for data seeds and
model seeds 0, 1 and 2; smaller shapes, lower contrast, more clutter or more noise make it harder.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

from cifarkit.dataset import CifarData
from cifarkit.validation import non_negative_int

__all__ = ["SYNTHETIC_CLASSES", "synthetic_cifar"]

SYNTHETIC_CLASSES = ("disc", "ring", "square", "frame", "triangle",
                     "cross", "star", "stripes", "checker", "dots")

SIZE = 32
# Difficulty knobs (all in units where the image spans -1..1 in x and y).
MAIN_SCALE = (0.45, 0.70)        # half-size of the main shape
MAIN_OFFSET = 0.25               # largest shift of the main shape's centre from the image centre
THICKNESS = (0.14, 0.30)         # half-width of the lines of ring/frame/cross, in shape units
CONTRAST_MIN = 0.30              # smallest brightness gap between the shape and the background
CHROMA = 0.3                     # largest random tint per channel, added to each colour's brightness
GRADIENT_MAX = 0.15              # amplitude of the background colour gradient
CLUTTER_MIN, CLUTTER_MAX = 1, 4  # each image gets CLUTTER_MIN..CLUTTER_MAX small distractor shapes
CLUTTER_SCALE = (0.12, 0.24)     # half-size of a distractor
CLUTTER_ALPHA = (0.35, 0.85)     # opacity of a distractor
STROKES_MAX = 2                  # and 0..STROKES_MAX long thin strokes
STROKE_WIDTH = (0.025, 0.05)     # half-width of a stroke, in units of its length
NOISE_STD = (0.03, 0.12)         # per-image standard deviation of the pixel noise (0..1 scale)

_NOTE = ("Generated stand-in, NOT CIFAR-10: ten classes of randomly placed, rotated and coloured "
         "shapes ({}) drawn over cluttered, noisy backgrounds by cifarkit.synthetic. Accuracies on it "
         "say nothing about CIFAR-10.")


# --------------------------------------------------------------------------------------------------
# Signed distance functions. `x`, `y` are B x H x W tensors in the shape's own frame (shape roughly
# inside -1..1); `t` is a B x 1 x 1 thickness. They return B x H x W distances, negative inside.

def _box(x, y, hx, hy):
    """Distance to an axis-aligned box with half-sizes hx, hy (exact inside, close enough outside)."""
    return torch.maximum(x.abs() - hx, y.abs() - hy)


def _sdf_disc(x, y, t):
    return torch.sqrt(x * x + y * y) - 0.95


def _sdf_ring(x, y, t):
    return (torch.sqrt(x * x + y * y) - (0.95 - t)).abs() - t


def _sdf_square(x, y, t):
    return _box(x, y, 0.78, 0.78)


def _sdf_frame(x, y, t):
    t = 0.75 * t  # keep a clear hole in the middle
    return _box(x, y, 0.82 - t, 0.82 - t).abs() - t


def _sdf_triangle(x, y, t):
    # Intersection of three half-planes whose normals point 120 degrees apart; inradius 0.55.
    d = None
    for k in range(3):
        a = math.pi / 2 + 2 * math.pi * k / 3
        side = x * math.cos(a) + y * math.sin(a) - 0.55
        d = side if d is None else torch.maximum(d, side)
    return d


def _sdf_cross(x, y, t):
    return torch.minimum(_box(x, y, 1.0, t), _box(x, y, t, 1.0))


def _sdf_bar(x, y, t):
    return _box(x, y, 1.0, t)


def _sdf_stripes(x, y, t):
    period = 0.6  # three stripes across the 1.8-wide patch
    u = torch.remainder(x / period + 0.5, 1.0) - 0.5  # stripe centres at x = 0 and +-period
    stripe = (u.abs() - 0.25) * period
    return torch.maximum(_box(x, y, 0.9, 0.9), stripe)


def _sdf_checker(x, y, t):
    cell = 0.6  # 3 x 3 cells over the 1.8-wide patch
    fx, fy = torch.remainder(x / cell + 1.5, 1.0), torch.remainder(y / cell + 1.5, 1.0)
    parity = (torch.floor(x / cell + 1.5) + torch.floor(y / cell + 1.5)).remainder(2.0)
    edge = torch.minimum(torch.minimum(fx, 1 - fx), torch.minimum(fy, 1 - fy)) * cell
    inside_cells = torch.where(parity == 0, -edge, edge)
    return torch.maximum(_box(x, y, 0.9, 0.9), inside_cells)


def _sdf_dots(x, y, t):
    # A 3 x 3 grid of small round dots (polka pattern), 0.65 apart.
    step = 0.65
    qx = x - step * torch.round(x / step).clamp(-1, 1)
    qy = y - step * torch.round(y / step).clamp(-1, 1)
    return torch.sqrt(qx * qx + qy * qy) - 0.22


def _sdf_star(x, y, t):
    # A five-pointed star with rounded tips: the radius swings with the angle around the centre.
    # (r - R(angle)) is not an exact distance, so it is scaled down to keep edges about 1 px soft.
    reach = 0.62 + 0.33 * torch.cos(5 * torch.atan2(y, x))
    return (torch.sqrt(x * x + y * y) - reach) * 0.6


_SDFS = (_sdf_disc, _sdf_ring, _sdf_square, _sdf_frame, _sdf_triangle,
         _sdf_cross, _sdf_star, _sdf_stripes, _sdf_checker, _sdf_dots)


# --------------------------------------------------------------------------------------------------

def _uniform(gen, shape, lo, hi):
    """A float tensor of the given shape, uniform in [lo, hi)."""
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


_STROKE, _NOTHING = -1, -2  # extra shape kinds: a long thin line, and "draw nothing here"


def _coverage(kinds, cx, cy, scale, angle, thick, coords):
    """Anti-aliased coverage (N x H x W, 0..1) of shapes of the given kinds and placements.

    `kinds` holds a class index per image, `_STROKE` for a plain line or `_NOTHING` for no shape;
    `coords` are the pixel-centre coordinates along one image axis.
    """
    n = len(kinds)
    cov = torch.zeros(n, SIZE, SIZE)
    col, row = coords.view(1, 1, SIZE), coords.view(1, SIZE, 1)  # x varies along W, y along H
    for k, sdf in [*enumerate(_SDFS), (_STROKE, _sdf_bar)]:
        idx = (kinds == k).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        sc = scale[idx].view(-1, 1, 1)
        c, s = torch.cos(angle[idx]).view(-1, 1, 1) / sc, torch.sin(angle[idx]).view(-1, 1, 1) / sc
        x0, y0 = cx[idx].view(-1, 1, 1), cy[idx].view(-1, 1, 1)
        # Rotate by -angle about the centre and divide by the scale: each pixel's position in the
        # shape's own frame. Both are affine in (x, y), so a row term plus a column term suffices.
        lx = (c * col) + (s * row - (c * x0 + s * y0))
        ly = (-s * col) + (c * row + (s * x0 - c * y0))
        dist = sdf(lx, ly, thick[idx].view(-1, 1, 1))
        # distance in pixels -> coverage: 1 deep inside, 0 outside, a one-pixel ramp at the edge
        cov[idx] = dist.mul_(sc * (-SIZE / 2)).add_(0.5).clamp_(0.0, 1.0)
    return cov


def _colour_pairs(gen, n):
    """Random shape and background colours (N x 3 each) that differ in brightness.

    Each colour is a random brightness plus a random tint of up to +-CHROMA per channel. The two
    brightnesses are at least CONTRAST_MIN apart, and which of the two is lighter is a coin flip, so
    the shape is always visible but neither its colour nor the background's says anything about the
    class.
    """
    lo, hi = 0.1, 0.9
    light_fg = _uniform(gen, (n,), lo, hi)
    # The background brightness is uniform over [lo, hi] minus a gap of CONTRAST_MIN either side.
    below = (light_fg - CONTRAST_MIN - lo).clamp(min=0.0)
    above = (hi - light_fg - CONTRAST_MIN).clamp(min=0.0)
    u = torch.rand(n, generator=gen) * (below + above)
    light_bg = torch.where(u < below, lo + u, light_fg + CONTRAST_MIN + (u - below))

    def tinted(light):
        tint = _uniform(gen, (n, 3), -CHROMA, CHROMA)
        tint = tint - tint.mean(dim=1, keepdim=True)  # a tint changes the hue, not the brightness
        return (light.unsqueeze(1) + tint).clamp(0.0, 1.0)

    return tinted(light_fg), tinted(light_bg)


def _paint(img, gen, kinds, coords, centre, scale, thick):
    """Blend randomly placed, randomly coloured, semi-transparent shapes of `kinds` into `img`."""
    n = len(kinds)
    cov = _coverage(kinds, _uniform(gen, (n,), -centre, centre), _uniform(gen, (n,), -centre, centre),
                    _uniform(gen, (n,), *scale), _uniform(gen, (n,), 0, 2 * math.pi),
                    _uniform(gen, (n,), *thick), coords)
    alpha = _uniform(gen, (n, 1, 1, 1), *CLUTTER_ALPHA)
    colour = torch.rand(n, 3, 1, 1, generator=gen)
    img.lerp_(colour.expand_as(img), cov.unsqueeze(1) * alpha)


def _render(labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Draw one image per label; returns uint8 N x 3 x 32 x 32."""
    n = len(labels)
    coords = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / (SIZE / 2) - 1.0  # pixel centres

    # Background: a random colour with a soft linear gradient in a random direction.
    fg, bg = _colour_pairs(gen, n)
    theta = _uniform(gen, (n, 1, 1), 0, 2 * math.pi)
    ramp = torch.cos(theta) * coords.view(1, 1, SIZE) + torch.sin(theta) * coords.view(1, SIZE, 1)
    grad = _uniform(gen, (n, 3, 1, 1), -GRADIENT_MAX, GRADIENT_MAX)
    img = bg.view(n, 3, 1, 1) + grad * ramp.unsqueeze(1)

    # Clutter behind the main shape: small shapes of any kind, then long thin strokes.
    n_clutter = torch.randint(CLUTTER_MIN, CLUTTER_MAX + 1, (n,), generator=gen)
    for slot in range(CLUTTER_MAX):
        kinds = torch.randint(0, len(_SDFS), (n,), generator=gen)
        _paint(img, gen, torch.where(slot < n_clutter, kinds, _NOTHING), coords,
               centre=0.9, scale=CLUTTER_SCALE, thick=THICKNESS)
    n_strokes = torch.randint(0, STROKES_MAX + 1, (n,), generator=gen)
    for slot in range(STROKES_MAX):
        # a "bar" of half-length ~1.2 and thin line width: it crosses most of the image
        kinds = torch.where(slot < n_strokes, _STROKE, _NOTHING)
        _paint(img, gen, kinds, coords, centre=0.7, scale=(0.9, 1.4), thick=STROKE_WIDTH)

    # The main shape: the label decides its kind, everything else is random.
    cov = _coverage(labels,
                    _uniform(gen, (n,), -MAIN_OFFSET, MAIN_OFFSET),
                    _uniform(gen, (n,), -MAIN_OFFSET, MAIN_OFFSET),
                    _uniform(gen, (n,), *MAIN_SCALE), _uniform(gen, (n,), 0, 2 * math.pi),
                    _uniform(gen, (n,), *THICKNESS), coords)
    img.lerp_(fg.view(n, 3, 1, 1).expand_as(img), cov.unsqueeze(1))

    # Pixel noise of a random strength per image (uniform noise with that standard deviation: it
    # looks the same as Gaussian noise here and is much cheaper to draw).
    sigma = _uniform(gen, (n, 1, 1, 1), *NOISE_STD)
    noise = torch.rand(img.shape, generator=gen).sub_(0.5).mul_(math.sqrt(12.0))
    img.addcmul_(noise, sigma)
    return img.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).contiguous()


@contextmanager
def _single_threaded():
    """Run torch on one CPU thread inside the block, restoring the previous setting afterwards.

    The drawing is many small, memory-bound tensor operations. Split over threads they gain little
    on an idle machine, but on a busy shared one every operation waits for a thread that the
    operating system has paused, and generation becomes ten times slower.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _balanced_labels(n: int, gen: torch.Generator) -> torch.Tensor:
    """`n` labels, every class `n // 10` times (the first `n % 10` classes once more), shuffled."""
    labels = torch.arange(n, dtype=torch.int64) % len(SYNTHETIC_CLASSES)
    return labels[torch.randperm(n, generator=gen)]


def synthetic_cifar(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> CifarData:
    """Generate the synthetic stand-in dataset (see the module docstring for what it contains).

    Returns a `CifarData` with ``source="synthetic"``, ``classes=SYNTHETIC_CLASSES``, uint8 images
    ``N x 3 x 32 x 32`` (contiguous, channels first like CIFAR-10) and int64 labels ``0..9`` with
    balanced classes (``n // 10`` each; the first ``n % 10`` classes get one extra). The result is
    fully determined by ``seed``; the training and test splits come from separate random streams, so
    they are independent draws, and the test split does not change when ``n_train`` changes.
    Generating 5,000 + 1,000 images takes about half a second of CPU time; it runs on one thread
    (see `_single_threaded`) and leaves torch's thread setting as it found it.

    Raises TypeError if a count or the seed is not an int (bools are refused too), ValueError if
    one of them is negative. Counts of 0 are allowed and give empty tensors of the right shape.
    """
    n_train = non_negative_int("n_train", n_train)
    n_test = non_negative_int("n_test", n_test)
    seed = non_negative_int("seed", seed)

    # One independent random stream per split, derived from the seed.
    streams = np.random.SeedSequence([int(seed), 0x5C1FA]).spawn(2)
    splits = []
    with _single_threaded():
        for stream, n in zip(streams, (n_train, n_test)):
            gen = torch.Generator().manual_seed(int(stream.generate_state(1, dtype=np.uint64)[0]) >> 1)
            labels = _balanced_labels(n, gen)
            splits.append((_render(labels, gen), labels))
    (x_train, y_train), (x_test, y_test) = splits
    return CifarData(x_train, y_train, x_test, y_test, classes=SYNTHETIC_CLASSES,
                     source="synthetic", note=_NOTE.format(", ".join(SYNTHETIC_CLASSES)))
