"""The real CIFAR-10 copy in ../shared (only where it exists: it is not part of the kit)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cifarkit import data

from conftest import SHARED_CIFAR

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not (SHARED_CIFAR / "build_cifar10.py").is_file(),
                                 reason="no ../shared/data/cifar10 on this machine")]


@pytest.fixture(scope="module")
def copy_dir():
    """Built once into a cache outside the repo (the build script is idempotent, ~10 s)."""
    out = Path(os.environ.get("CIFARKIT_CI_DATA")
               or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cifarkit-ci")
    subprocess.run([sys.executable, str(SHARED_CIFAR / "build_cifar10.py"), str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


def test_both_splits_load_through_the_unverified_path(copy_dir, tmp_path):
    root = tmp_path / "root"
    data.prepare_cifar10(copy_dir, root, verify=False)  # reads the release files without md5 checks
    # the restricted unpickler reads the real files, and the staged writes leave only the two caches
    assert sorted(p.name for p in root.iterdir()) == ["cifar10-test-unverified.pt", "cifar10-train-unverified.pt"]
    x_train, y_train = data.load_cifar10(root, train=True, verify=False)
    x_test, y_test = data.load_cifar10(root, train=False, verify=False)
    assert x_train.shape == (50_000, 3, 32, 32) and x_test.shape == (10_000, 3, 32, 32)
    assert torch.bincount(y_train).tolist() == [5000] * 10
    assert torch.bincount(y_test).tolist() == [1000] * 10
    assert 100 < x_train[:1000].float().mean() < 140  # natural images, not noise or blanks


def test_the_copy_fails_md5_verification_with_a_helpful_error(copy_dir, tmp_path):
    with pytest.raises(data.CorruptDataError, match="verify=False") as err:
        data.load_cifar10(copy_dir, train=False, verify=True)
    assert "test_batch" in str(err.value) and len(str(err.value).splitlines()) == 1  # names the files
