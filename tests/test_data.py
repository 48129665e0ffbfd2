import pickle
import socket
import threading
import time
import warnings

import numpy as np
import pytest
import torch

from cifarkit import data
from cifarkit.data import CorruptDataError, DataUnavailableError, UnverifiedDataWarning

SIZES = {True: 250, False: 50}  # a miniature release: 5 x 50 train images, 50 test images


@pytest.fixture
def mini_release(tmp_path, monkeypatch):
    """A small copy in the release's python format (sizes patched down), like a re-packed copy."""
    monkeypatch.setattr(data, "SPLIT_SIZES", SIZES)
    data._warned_unverified.clear()
    root = tmp_path / "copy"
    d = root / data.RELEASE_DIR
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*[(f, 50) for f in data.TRAIN_FILES], ("test_batch", 50)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(n)], b"batch_label": b"x", b"filenames": []}
        (d / name).write_bytes(pickle.dumps(batch))
    return root


def test_unverified_load_checks_shapes_and_warns_once(mini_release):
    with pytest.warns(UnverifiedDataWarning, match="WITHOUT md5 verification") as caught:
        x, y = data.load_cifar10(mini_release, train=True, verify=False)
    assert [w.filename for w in caught] == [__file__]  # points at the caller's line, not into the kit
    assert x.shape == (250, 3, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and torch.bincount(y).tolist() == [25] * 10
    raw = pickle.loads((mini_release / data.RELEASE_DIR / "data_batch_1").read_bytes())
    assert np.array_equal(x[0].numpy().reshape(-1), raw[b"data"][0])  # CHW row-major, like the release
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_cifar10(mini_release, train=False, verify=False)  # same copy: no second warning


def test_unverified_warning_points_at_the_users_call_through_load_data(mini_release):
    with pytest.warns(UnverifiedDataWarning) as caught:
        data.load_data("cifar10-unverified", root=mini_release, verbose=False)
    assert [w.filename for w in caught] == [__file__]


def test_second_load_comes_from_the_cache(mini_release):
    x1, y1 = data.load_cifar10(mini_release, train=False, verify=False)
    assert (mini_release / "cifar10-test-unverified.pt").is_file()
    (mini_release / data.RELEASE_DIR / "test_batch").unlink()
    x2, y2 = data.load_cifar10(mini_release, train=False, verify=False)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_verified_load_refuses_a_modified_copy(mini_release):
    with pytest.raises(CorruptDataError, match="md5") as err:
        data.load_cifar10(mini_release, train=False, verify=True)
    assert "verify=False" in str(err.value)


def test_unverified_cache_is_not_used_when_verification_is_asked(mini_release):
    data.load_cifar10(mini_release, train=False, verify=False)
    with pytest.raises(CorruptDataError):
        data.load_cifar10(mini_release, train=False, verify=True)


def test_truncated_file_is_named(mini_release):
    path = mini_release / data.RELEASE_DIR / "data_batch_3"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptDataError, match="data_batch_3"):
        data.load_cifar10(mini_release, train=True, verify=False)


def test_bad_labels_and_shapes_are_caught(mini_release):
    path = mini_release / data.RELEASE_DIR / "test_batch"
    batch = pickle.loads(path.read_bytes())
    batch[b"labels"][0] = 10
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(CorruptDataError, match="labels outside"):
        data.load_cifar10(mini_release, train=False, verify=False)
    batch[b"labels"][0] = 1
    batch[b"data"] = batch[b"data"][:, :100]
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(CorruptDataError, match="3072"):
        data.load_cifar10(mini_release, train=False, verify=False)


def test_missing_file_is_named(mini_release):
    (mini_release / data.RELEASE_DIR / "data_batch_5").unlink()
    with pytest.raises(DataUnavailableError, match="data_batch_5"):
        data.load_cifar10(mini_release, train=True, verify=False)


def test_corrupted_cache_is_named(mini_release):
    data.load_cifar10(mini_release, train=False, verify=False)
    cache = mini_release / "cifar10-test-unverified.pt"
    cache.write_bytes(b"garbage")
    with pytest.raises(CorruptDataError, match="cifar10-test-unverified.pt"):
        data.load_cifar10(mini_release, train=False, verify=False)


def test_missing_data_names_both_ways_out(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        data.load_cifar10(tmp_path / "empty", train=True)
    assert "network" in str(err.value) and "CIFARKIT_DATA" in str(err.value)


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARKIT_DATA", str(tmp_path / "somewhere"))
    assert data.data_root() == tmp_path / "somewhere"
    monkeypatch.delenv("CIFARKIT_DATA")
    assert data.data_root().name == "cifarkit"


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers: a stalled download."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_stalled_download_fails_fast_with_a_clear_message(tmp_path, monkeypatch, silent_server):
    from torchvision.datasets import CIFAR10
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{silent_server}/cifar-10-python.tar.gz")
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 2.0)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as err:
        data.load_cifar10(tmp_path / "dl", train=True, download=True)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert "could not download" in msg and "network" in msg and "CIFARKIT_DATA" in msg
    assert err.value.__suppress_context__  # the message stands alone, not behind a urllib traceback


def test_refused_download_fails_with_a_clear_message(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    with pytest.raises(DataUnavailableError, match="CIFARKIT_DATA"):
        data.load_cifar10(tmp_path / "dl", train=False, download=True)


def test_download_requires_verification(tmp_path):
    with pytest.raises(ValueError):
        data.load_cifar10(tmp_path, download=True, verify=False)


def test_prepare_then_auto_uses_the_prepared_copy(mini_release, tmp_path):
    root = tmp_path / "prepared"
    status = data.prepare_cifar10(mini_release, root, verify=False)
    assert status["unverified_cache"] and not status["verified_cache"]
    d = data.load_data("auto", root=root, verbose=False)
    assert d.source == "cifar10-unverified" and "not verified" in d.label and not d.synthetic
    sub = data.load_data("auto", n_train=100, n_test=20, root=root, verbose=False)
    assert len(sub.y_train) == 100 and torch.bincount(sub.y_train).tolist() == [10] * 10


def test_auto_falls_back_to_synthetic_and_says_so(tmp_path, capsys):
    d = data.load_data("auto", n_train=200, n_test=50, root=tmp_path / "empty")
    assert d.synthetic and d.source == "synthetic" and "SYNTHETIC" in d.label
    assert len(d.y_train) == 200 and len(d.y_test) == 50
    assert "SYNTHETIC" in capsys.readouterr().out


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="synthetic"):
        data.load_data("imagenet")


def test_textbook_loader_matches_the_fast_path_without_augmentation(mini_release):
    from cifarkit.loader import TensorLoader
    d = data.load_data("cifar10-unverified", root=mini_release, verbose=False)
    xb, yb = next(iter(data.textbook_loader(d, train=False, batch_size=16)))
    fb, fy = next(iter(TensorLoader(d.x_test, d.y_test, 16)))
    assert torch.equal(yb, fy)
    torch.testing.assert_close(xb, fb, atol=1e-5, rtol=1e-5)
