import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10"

# The fixture notebooks are inputs of the runner tests, not notebooks to validate: with
# --nbval-lax pytest would otherwise collect and execute them outside their test.
collect_ignore = ["fixtures"]

# Tests must not depend on the developer's data or on a live plot.
os.environ.setdefault("CIFARKIT_HEADLESS", "1")


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    """Every test starts with an empty data root and results dir unless it sets its own."""
    monkeypatch.setenv("CIFARKIT_DATA", str(tmp_path / "data-root"))
    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("CIFARKIT_PROFILE", raising=False)
    torch.manual_seed(0)


class TinyNet(torch.nn.Module):
    """Two conv+BN layers and a linear head with known sizes.

    Parameters: conv1 216+8, bn1 8+8, conv2 1152+16, bn2 16+16, fc 160+10 = 1610; prunable
    (conv and linear) weights 216 + 1152 + 160 = 1528. ``pool`` owns no parameters.
    """

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest single-threaded, and much faster when the shared CPU is busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_cnn(num_classes: int = 10, width: int = 8) -> torch.nn.Module:
    """A very small convnet (with BatchNorm and dropout) for fast loop tests."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(4),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.2), nn.Linear(2 * width, num_classes))


def random_images(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
            torch.arange(n) % 10)


BOOK_FIXTURES = Path(__file__).parent / "fixtures" / "book"


@pytest.fixture(scope="session")
def book_run(tmp_path_factory):
    """tests/fixtures/book (math, figures, claims, Colab badges; synthetic data) executed once by
    the runner: the small executed run of the book tests (a few seconds)."""
    from cifarkit.course.runner import run_notebooks

    return run_notebooks(BOOK_FIXTURES, out=tmp_path_factory.mktemp("book") / "run", progress=False).run_dir


@pytest.fixture(scope="session")
def book_site(book_run, tmp_path_factory):
    """The book of `book_run` (a `cifarkit.course.book.Book`), built once."""
    from cifarkit.course.book import build_book

    return build_book(book_run, tmp_path_factory.mktemp("book-site") / "site")
