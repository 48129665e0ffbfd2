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

# Most tests here load the re-packed miniature copy on purpose; the warning itself is tested below.
pytestmark = pytest.mark.filterwarnings("ignore::cifarkit.data.UnverifiedDataWarning")


def write_release(directory, seed=0, key=bytes):
    """A miniature release in the python format: 5 x 50 train images, 50 test images, the meta file.

    The release's keys are Python 2 strings: bytes to `pickle.load(encoding="bytes")`, str to
    torchvision's `encoding="latin1"`. Python 3 cannot write those, so pick one with `key`."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = (lambda s: s.encode()) if key is bytes else str
    for name in (*data.TRAIN_FILES, *data.TEST_FILES):
        batch = {k("data"): rng.integers(0, 256, (50, 3072), dtype=np.uint8),
                 k("labels"): [i % 10 for i in range(50)], k("batch_label"): b"x", k("filenames"): []}
        (directory / name).write_bytes(pickle.dumps(batch))
    (directory / data.META_FILE).write_bytes(pickle.dumps({k("label_names"): list(data.CIFAR10_CLASSES)}))
    return directory


@pytest.fixture(autouse=True)
def _offline_and_fresh(monkeypatch):
    """No test probes the real network: the probe says offline unless a test replaces it, and
    each test starts with this process's network and notice memory empty."""
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)
    monkeypatch.delenv(data.NETWORK_ENV, raising=False)
    monkeypatch.setattr(data, "_probe", lambda url, timeout: "could not reach the test's network")
    monkeypatch.setattr(data, "_network", {})
    monkeypatch.setattr(data, "_told", set())
    monkeypatch.setattr(data, "_failed_downloads", {})
    monkeypatch.setattr(data, "_warned_unverified", set())


@pytest.fixture
def mini_release(tmp_path, monkeypatch):
    """A small copy in the release's python format (sizes patched down), like a re-packed copy."""
    monkeypatch.setattr(data, "SPLIT_SIZES", SIZES)
    data._warned_unverified.clear()
    root = tmp_path / "copy"
    write_release(root / data.RELEASE_DIR)
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


def _serve(reply):
    """A loopback HTTP "server": each connection is handed to `reply(conn, stop)` in a thread.
    Yields the port; on exit it stops and closes everything."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop, threads = threading.Event(), []

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = srv.accept()[0]
            except OSError:
                continue
            threads.append(threading.Thread(target=reply, args=(conn, stop), daemon=True))
            threads[-1].start()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for th in threads:
        th.join(5)
    srv.close()


def _never_answer(conn, stop):
    stop.wait()
    conn.close()


def _trickle(conn, stop):
    """Answers with a 10 MB body and then sends it 1 kB every 50 ms: alive, but hopelessly slow."""
    try:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
        while not stop.wait(0.05):
            conn.sendall(b"x" * 1000)
    except OSError:
        pass
    finally:
        conn.close()


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers: a stalled download."""
    yield from _serve(_never_answer)


@pytest.fixture
def crawling_server():
    """A loopback server that answers but sends the body at 20 kB/s: a crawling mirror."""
    yield from _serve(_trickle)


def test_stalled_download_fails_fast_with_a_clear_message(tmp_path, monkeypatch, silent_server):
    monkeypatch.setattr(data, "DOWNLOAD_URL", f"http://127.0.0.1:{silent_server}/cifar-10-python.tar.gz")
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 2.0)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as err:
        data.load_cifar10(tmp_path / "dl", train=True, download=True)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert "could not download" in msg and "network" in msg and "CIFARKIT_DATA" in msg
    assert err.value.__suppress_context__  # the message stands alone, not behind a urllib traceback
    assert [p.name for p in (tmp_path / "dl").iterdir()] == []  # no partial archive left


def test_refused_download_fails_with_a_clear_message(tmp_path, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setattr(data, "DOWNLOAD_URL", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    with pytest.raises(DataUnavailableError, match="CIFARKIT_DATA"):
        data.load_cifar10(tmp_path / "dl", train=False, download=True)


def test_the_kit_downloads_what_torchvision_verifies():
    from torchvision.datasets import CIFAR10
    assert data.DOWNLOAD_URL == CIFAR10.url
    names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    assert list(data.RELEASE_FILES) == names


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


# --- auto downloads when the network answers (all without a network) ------------------------------

@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """A miniature release packed like the real archive, with torchvision's md5 sums patched to
    match it, and a fake `_fetch` that "downloads" it. Yields the list of fetched URLs."""
    import hashlib
    import shutil
    import tarfile

    from torchvision.datasets import CIFAR10
    monkeypatch.setattr(data, "SPLIT_SIZES", SIZES)
    src = write_release(tmp_path / "pack" / data.RELEASE_DIR, seed=1, key=str)  # as torchvision reads it
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in src.iterdir()}
    archive = tmp_path / "pack" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=data.RELEASE_DIR)
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5[n]] for n in data.TRAIN_FILES])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, md5[n]] for n in data.TEST_FILES])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5[data.META_FILE]})
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    fetched = []

    def fake_fetch(url, dst, deadline):
        fetched.append(url)
        shutil.copy(archive, dst)
    monkeypatch.setattr(data, "_fetch", fake_fetch)
    yield fetched


def _online(monkeypatch):
    monkeypatch.setattr(data, "_probe", lambda url, timeout: None)


def test_auto_downloads_the_release_when_the_network_answers(fake_release, tmp_path, monkeypatch, capsys):
    _online(monkeypatch)
    root = tmp_path / "root"
    d = data.load_data("auto", root=root)
    assert d.source == "cifar10" and len(d.y_train) == 250 and len(d.y_test) == 50
    assert fake_release == [data.DOWNLOAD_URL]
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar10-test.pt", "cifar10-train.pt"]
    out = capsys.readouterr().out
    assert "Downloading CIFAR-10" in out and "SYNTHETIC" not in out
    assert data.load_data("auto", root=root, verbose=False).source == "cifar10"
    assert len(fake_release) == 1  # the second time it comes from the cache


def test_a_download_failing_md5_falls_back_and_keeps_nothing(fake_release, tmp_path, monkeypatch, capsys):
    _online(monkeypatch)
    monkeypatch.setattr(data, "_fetch", lambda url, dst, deadline: dst.write_bytes(b"not the release"))
    root = tmp_path / "root"
    assert data.load_data("auto", n_train=20, n_test=10, root=root).synthetic
    out = capsys.readouterr().out
    assert out.count("Using the SYNTHETIC stand-in") == 1 and "md5" in out
    assert list(root.iterdir()) == []


def test_a_crawling_mirror_falls_back_within_the_deadline(tmp_path, monkeypatch, capsys, crawling_server):
    _online(monkeypatch)
    monkeypatch.setattr(data, "DOWNLOAD_URL", f"http://127.0.0.1:{crawling_server}/cifar-10-python.tar.gz")
    monkeypatch.setattr(data, "DOWNLOAD_DEADLINE_S", 1.0)
    root = tmp_path / "root"
    start = time.monotonic()
    d = data.load_data("auto", n_train=20, n_test=10, root=root)
    assert time.monotonic() - start < 10 and d.synthetic
    notice = [line for line in capsys.readouterr().out.splitlines() if "SYNTHETIC stand-in:" in line]
    assert len(notice) == 1 and "1 s limit" in notice[0] and "TimeoutError" in notice[0]
    assert list(root.iterdir()) == []  # no partial archive
    data.load_data("auto", n_train=20, n_test=10, root=root)  # failed once in this process: not retried
    assert time.monotonic() - start < 12 and "see above" in capsys.readouterr().out


@pytest.mark.parametrize("done, elapsed, message", [
    (5_000_000, 601.0, "passed its 600 s limit"),
    (1_000_000, 31.0, "too slow"),  # 163 MB at 32 kB/s: would take 85 min
    (100_000_000, 31.0, None),      # on pace to finish in 51 s
    (1_000, 10.0, None),            # too early to judge
])
def test_the_pace_check(done, elapsed, message):
    if message is None:
        data._check_pace(done, 163_000_000, elapsed, 600.0)
    else:
        with pytest.raises(TimeoutError, match=message):
            data._check_pace(done, 163_000_000, elapsed, 600.0)


def test_offline_auto_says_so_once_per_process(tmp_path, monkeypatch, capsys):
    probes = []
    monkeypatch.setattr(data, "_probe", lambda url, timeout: probes.append(url) or "no route to host")
    for _ in range(3):
        assert data.load_data("auto", n_train=20, n_test=10, root=tmp_path / "empty").synthetic
    out = capsys.readouterr().out
    assert out.count("Using the SYNTHETIC stand-in: no CIFAR-10 copy under") == 1
    assert "offline (no route to host)" in out and out.count("(no CIFAR-10: see above)") == 2
    assert len(probes) == 1  # the probe result is cached for the process


def test_the_runners_network_answer_is_trusted_and_the_notice_is_short(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.NETWORK_ENV, "0")
    monkeypatch.setattr(data, "_probe", lambda url, timeout: pytest.fail("probed despite CIFARKIT_NETWORK"))
    assert data.load_data("auto", n_train=20, n_test=10, root=tmp_path / "empty").synthetic
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Data: SYNTHETIC")
    assert "(offline: see the run's first line)" in lines[0]


def test_network_1_downloads_without_probing(fake_release, tmp_path, monkeypatch):
    monkeypatch.setenv(data.NETWORK_ENV, "1")
    monkeypatch.setattr(data, "_probe", lambda url, timeout: pytest.fail("probed despite CIFARKIT_NETWORK"))
    assert data.load_data("auto", root=tmp_path / "root", verbose=False).source == "cifar10"


@pytest.mark.parametrize("network", [None, "1"])
def test_cifarkit_offline_forces_offline(fake_release, tmp_path, monkeypatch, capsys, network):
    _online(monkeypatch)
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    if network:
        monkeypatch.setenv(data.NETWORK_ENV, network)
    assert data.network_available() is False
    assert data.load_data("auto", n_train=20, n_test=10, root=tmp_path / "a").synthetic and not fake_release
    out = capsys.readouterr().out
    assert ("CIFARKIT_OFFLINE=1 is set" in out) == (network is None)  # the run announced it otherwise
    with pytest.raises(DataUnavailableError, match="CIFARKIT_OFFLINE=1 is set"):
        data.load_cifar10(tmp_path / "b", download=True)
    assert not fake_release


def test_network_available_probes_and_caches(tmp_path, monkeypatch):
    monkeypatch.undo()  # the real probe, against loopback addresses only
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)
    monkeypatch.delenv(data.NETWORK_ENV, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(data, "_network", {})
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    monkeypatch.setattr(data, "DOWNLOAD_URL", f"http://127.0.0.1:{port}/x.tar.gz")
    assert data.network_available(timeout=2) is True
    listener.close()
    assert data.network_available(timeout=2) is True  # cached for the process
    start = time.monotonic()
    assert data.network_available(timeout=1, refresh=True) is False
    assert time.monotonic() - start < 3
    assert f"127.0.0.1:{port}" in data._network["why"]


def test_the_probe_goes_to_the_proxy_when_one_is_set(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert data._probe_target(data.DOWNLOAD_URL) == ("proxy.example", 3128)
    monkeypatch.delenv("https_proxy")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    assert data._probe_target(data.DOWNLOAD_URL) == ("www.cs.toronto.edu", 443)


@pytest.mark.parametrize("var, value", [(data.NETWORK_ENV, "maybe"), (data.OFFLINE_ENV, "2")])
def test_a_malformed_network_variable_is_named(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=f"{var}='{value}'"):
        data.network_available()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "2"])
def test_network_available_rejects_a_bad_timeout(timeout):
    with pytest.raises(ValueError, match="timeout"):
        data.network_available(timeout=timeout)


def test_describe_auto_says_what_auto_will_use(mini_release, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    assert "SYNTHETIC" in data.describe_auto(empty) and "offline" in data.describe_auto(empty)
    monkeypatch.setattr(data, "_network", {})
    _online(monkeypatch)
    assert "downloaded on first use" in data.describe_auto(empty)
    assert "if they pass the md5 check" in data.describe_auto(mini_release)
    data.prepare_cifar10(mini_release, tmp_path / "prepared", verify=False)
    assert "checksums not verified" in data.describe_auto(tmp_path / "prepared")


# --- robustness: atomic caches, advice that fits, missing vs modified, crafted files ----------------

def _snapshot(root):
    return {p.name: p.read_bytes() for p in root.iterdir()} if root.exists() else {}


def test_a_failed_prepare_leaves_nothing_behind(mini_release, tmp_path):
    (mini_release / data.RELEASE_DIR / "test_batch").write_bytes(b"\x80\x04truncated")
    root = tmp_path / "root"
    with pytest.raises(CorruptDataError, match="test_batch"):
        data.prepare_cifar10(mini_release, root, verify=False)
    assert _snapshot(root) == {}  # not even the (fine) training split


def test_a_failed_prepare_keeps_the_previous_caches(mini_release, tmp_path):
    root = tmp_path / "root"
    data.prepare_cifar10(mini_release, root, verify=False)
    before = _snapshot(root)
    (mini_release / data.RELEASE_DIR / "data_batch_4").write_bytes(b"garbage")
    with pytest.raises(CorruptDataError, match="data_batch_4"):
        data.prepare_cifar10(mini_release, root, verify=False)
    assert _snapshot(root) == before


def test_a_failed_cache_write_in_prepare_is_all_or_nothing(mini_release, tmp_path, monkeypatch):
    root = tmp_path / "root"
    data.prepare_cifar10(mini_release, root, verify=False)
    before = _snapshot(root)
    real_save, calls = data.atomic_save, []

    def second_write_fails(obj, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_save(obj, path)
    monkeypatch.setattr(data, "atomic_save", second_write_fails)
    with pytest.raises(OSError, match="cannot write the CIFAR-10 cache.*No space left"):
        data.prepare_cifar10(mini_release, root, verify=False)
    assert len(calls) == 2 and _snapshot(root) == before  # the new train cache was not kept either


def test_the_info_after_a_failed_prepare_is_unchanged(mini_release, tmp_path):
    root = tmp_path / "root"
    (mini_release / data.RELEASE_DIR / "test_batch").unlink()
    with pytest.raises(DataUnavailableError, match="test_batch is missing"):
        data.prepare_cifar10(mini_release, root, verify=False)
    assert data.cifar10_status(root)["caches"] == {}


@pytest.mark.parametrize("release", [True, False])
def test_the_advice_for_a_truncated_cache_fits_the_situation(mini_release, tmp_path, release):
    root = tmp_path / "root"
    data.prepare_cifar10(mini_release, root, verify=False)
    cache = root / "cifar10-train-unverified.pt"
    cache.write_bytes(cache.read_bytes()[:5000])
    if release:
        write_release(root / data.RELEASE_DIR)
    with pytest.raises(CorruptDataError) as err:
        data.load_cifar10(root, train=True, verify=False)
    msg = str(err.value)
    assert str(cache) in msg and len(msg.splitlines()) == 1
    assert ("rebuilds it from the release files" in msg) == release
    assert ("data download" in msg and "prepare --from" in msg) == (not release)


def test_an_empty_release_folder_is_reported_missing_not_modified(tmp_path):
    (tmp_path / data.RELEASE_DIR).mkdir()
    with pytest.raises(DataUnavailableError) as err:
        data.load_cifar10(tmp_path, train=False)
    msg = str(err.value)
    assert "md5" not in msg and all(name in msg for name in data.RELEASE_FILES) and "missing" in msg


def test_a_partial_release_names_only_the_missing_files(mini_release):
    (mini_release / data.RELEASE_DIR / "data_batch_2").unlink()
    with pytest.raises(DataUnavailableError, match=r"incomplete: data_batch_2 is missing") as err:
        data.load_cifar10(mini_release, train=False)
    assert "data_batch_1" not in str(err.value) and "Restore them" in str(err.value)  # not "download"


def test_a_copy_repacked_with_str_keys_loads_unverified(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "SPLIT_SIZES", SIZES)
    write_release(tmp_path / data.RELEASE_DIR, key=str)
    x, y = data.load_cifar10(tmp_path, train=False, verify=False)
    assert x.shape == (50, 3, 32, 32) and torch.bincount(y).tolist() == [5] * 10


def test_the_md5_error_names_the_files_that_fail(mini_release):
    with pytest.raises(CorruptDataError, match=r"^data_batch_1, .*test_batch, batches.meta in .* fail"):
        data.load_cifar10(mini_release, train=True)


class _Evil:
    """Unpickling this creates a folder: evidence that a loader ran a crafted file's code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return os.mkdir, (self.marker,)


def test_a_crafted_batch_file_runs_no_code(mini_release, tmp_path):
    marker = tmp_path / "pwned"
    path = mini_release / data.RELEASE_DIR / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}))
    with pytest.raises(CorruptDataError, match="data_batch_1 is not a readable CIFAR-10 batch.*posix.mkdir"):
        data.load_cifar10(mini_release, train=True, verify=False)
    assert not marker.exists()


def test_a_crafted_cache_file_runs_no_code_and_is_one_line(mini_release, tmp_path):
    marker = tmp_path / "pwned"
    cache = mini_release / "cifar10-test-unverified.pt"
    torch.save({"x": _Evil(marker), "y": None}, cache)  # what a torch.load(weights_only=False) would run
    with pytest.raises(CorruptDataError) as err:
        data.load_cifar10(mini_release, train=False, verify=False)
    assert not marker.exists()
    msg = str(err.value)
    assert str(cache) in msg and "mkdir" in msg and "could run code" in msg and len(msg.splitlines()) == 1
    assert err.value.__cause__ is None and err.value.__suppress_context__
