"""Bad input to the data entry points: wrong arguments and damaged, crafted or misplaced files.

Every case checks the same three things: one clear line naming the argument or the file, raised
by the kit's own code (not a traceback ending deep inside torch, numpy or pickle), and nothing
written or lost on disk (checked by comparing every file under the test's folder before and after).
"""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarkit import data
from cifarkit.course import cli
from cifarkit.dataset import CifarData
from cifarkit.synthetic import synthetic_cifar

from test_data import SIZES, _Evil, _offline_and_fresh, write_release  # noqa: F401  (autouse fixture)

KIT = Path(data.__file__).resolve().parent
pytestmark = pytest.mark.filterwarnings("ignore::cifarkit.data.UnverifiedDataWarning",
                                        "ignore:could not write the cache")


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (path -> bytes) and every folder (path -> None)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def assert_clean(err, *names, before=None, folder=None):
    """`err` (a pytest ExceptionInfo or a message) is one line naming all `names`, raised by the kit;
    and `folder` holds exactly what it held `before`."""
    msg = err if isinstance(err, str) else str(err.value)
    assert len(msg.strip().splitlines()) == 1, msg
    for name in names:
        assert str(name) in msg, (name, msg)
    if not isinstance(err, str):
        assert Path(str(err.traceback[-1].path)).resolve().parent == KIT, err.traceback[-1]
        assert err.value.__cause__ is None  # no second traceback from torch or pickle behind it
    if folder is not None:
        assert snapshot(folder) == before


@pytest.fixture
def small(monkeypatch):
    """Miniature split sizes, matching `write_release`."""
    monkeypatch.setattr(data, "SPLIT_SIZES", SIZES)


# --- arguments --------------------------------------------------------------------------------------

def _tiny_data():
    x = torch.zeros(40, 3, 32, 32, dtype=torch.uint8)
    y = torch.arange(40) % 10
    return CifarData(x, y, x[:20], y[:20], data.CIFAR10_CLASSES, "cifar10")


ROOT = "<root>"  # replaced by the test's (not yet existing) data root
ARGUMENT_CASES = [
    # (entry point, keyword arguments, exception, the name the message must contain)
    (data.load_data, dict(source=3), ValueError, "data source 3"),
    (data.load_data, dict(source=None), ValueError, "data source None"),
    (data.load_data, dict(source="CIFAR10"), ValueError, "'CIFAR10'"),
    (data.load_data, dict(n_train=True), TypeError, "n_train"),
    (data.load_data, dict(n_train=-1), ValueError, "n_train"),
    (data.load_data, dict(n_train=float("nan")), TypeError, "n_train"),
    (data.load_data, dict(n_train=2.5), TypeError, "n_train"),
    (data.load_data, dict(n_train="100"), TypeError, "n_train"),
    (data.load_data, dict(n_test=False), TypeError, "n_test"),
    (data.load_data, dict(n_test=-10), ValueError, "n_test"),
    (data.load_data, dict(seed="x"), TypeError, "seed"),
    (data.load_data, dict(seed=-1), ValueError, "seed"),
    (data.load_data, dict(seed=1.0), TypeError, "seed"),
    (data.load_data, dict(seed=True), TypeError, "seed"),
    (data.load_data, dict(seed=2**64), ValueError, "seed"),
    (data.load_data, dict(source="synthetic", n_train=-1), ValueError, "n_train"),
    (data.load_data, dict(root=5), TypeError, "root"),
    (data.load_data, dict(root=""), ValueError, "root"),
    (data.load_data, dict(root=["a"]), TypeError, "root"),
    (data.load_cifar10, dict(root=3.0), TypeError, "root"),
    (data.load_cifar10, dict(train="yes"), TypeError, "train"),
    (data.load_cifar10, dict(train=None), TypeError, "train"),
    (data.load_cifar10, dict(download=1), TypeError, "download"),
    (data.load_cifar10, dict(verify="no"), TypeError, "verify"),
    (data.load_cifar10, dict(download=True, verify=False), ValueError, "download=True needs verify=True"),
    (data.prepare_cifar10, dict(source_dir=None), TypeError, "source_dir"),
    (data.prepare_cifar10, dict(source_dir=42), TypeError, "source_dir"),
    (data.prepare_cifar10, dict(source_dir=ROOT, verify="yes"), TypeError, "verify"),
    (data.prepare_cifar10, dict(source_dir=ROOT, root=object()), TypeError, "root"),
    (data.cifar10_status, dict(root=1), TypeError, "root"),
    (synthetic_cifar, dict(n_train=True), TypeError, "n_train"),
    (synthetic_cifar, dict(n_train=-1), ValueError, "n_train"),
    (synthetic_cifar, dict(n_train=float("nan")), TypeError, "n_train"),
    (synthetic_cifar, dict(n_test="5"), TypeError, "n_test"),
    (synthetic_cifar, dict(seed="x"), TypeError, "seed"),
    (synthetic_cifar, dict(seed=-3), ValueError, "seed"),
    (synthetic_cifar, dict(seed=1.5), TypeError, "seed"),
    ("subset", dict(n_train=True), TypeError, "n_train"),
    ("subset", dict(n_train=-1), ValueError, "n_train"),
    ("subset", dict(n_train=float("nan")), TypeError, "n_train"),
    ("subset", dict(n_train="10"), TypeError, "n_train"),
    ("subset", dict(n_test=-1), ValueError, "n_test"),
    ("subset", dict(seed="x"), TypeError, "seed"),
    ("subset", dict(seed=None), TypeError, "seed"),
    ("subset", dict(seed=-1), ValueError, "seed"),
]


def _case_id(kwargs: dict) -> str:
    """The case's arguments as a test id that is the same in every process (an object's repr holds
    its address, which differs between pytest-xdist's workers)."""
    return str({k: (f"<{type(v).__name__}>" if type(v).__repr__ is object.__repr__ else v)
                for k, v in kwargs.items()})


@pytest.mark.parametrize("func, kwargs, exc, name", ARGUMENT_CASES,
                         ids=[f"{getattr(f, '__name__', f)}-{_case_id(k)}" for f, k, _, _ in ARGUMENT_CASES])
def test_a_bad_argument_is_named_before_anything_happens(tmp_path, capsys, func, kwargs, exc, name):
    kwargs = {k: (str(tmp_path / "root") if v == ROOT else v) for k, v in kwargs.items()}
    if func in (data.load_data, data.load_cifar10):
        kwargs.setdefault("root", str(tmp_path / "root"))
    func = _tiny_data().subset if func == "subset" else func
    before = snapshot(tmp_path)
    with pytest.raises(exc) as err:
        func(**kwargs)
    assert_clean(err, name, before=before, folder=tmp_path)
    assert capsys.readouterr().out == ""  # checked before any "Data: ..." line or download


# --- damaged release files -------------------------------------------------------------------------

def _rewrite_batch(path: Path, **changes):
    batch = pickle.loads(path.read_bytes())
    for key, change in changes.items():
        batch[key.encode()] = change(batch[key.encode()])
    path.write_bytes(pickle.dumps(batch))


def _relabel(labels):
    return [10, *labels[1:]]


def _as_folder(path: Path):
    path.unlink()
    path.mkdir()


BATCH_DAMAGE = {
    "missing": Path.unlink,
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:700]),
    "random-bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(4000)),
    "not-a-dict": lambda p: p.write_bytes(pickle.dumps([1, 2, 3])),
    "no-data-key": lambda p: p.write_bytes(pickle.dumps({b"labels": [0] * 50})),
    "wrong-shape": lambda p: _rewrite_batch(p, data=lambda d: d[:, :100]),
    "wrong-dtype": lambda p: _rewrite_batch(p, data=lambda d: d.astype(np.float32)),
    "label-count": lambda p: _rewrite_batch(p, labels=lambda labels: labels[:-1]),
    "label-range": lambda p: _rewrite_batch(p, labels=_relabel),
    "string-labels": lambda p: _rewrite_batch(p, labels=lambda labels: ["cat"] * len(labels)),
    "crafted": lambda p: p.write_bytes(pickle.dumps({b"data": _Evil(p.parent.parent / "pwned"), b"labels": []})),
    "a-folder": _as_folder,
}


@pytest.fixture
def copies(tmp_path, small):
    """A healthy copy (`good`) and one to damage (`bad`), and a data root holding caches built
    from the healthy one (they must survive a failed prepare)."""
    good, bad, root = tmp_path / "good", tmp_path / "bad", tmp_path / "root"
    write_release(good / data.RELEASE_DIR)
    write_release(bad / data.RELEASE_DIR)
    data.prepare_cifar10(good, root, verify=False)
    return good, bad, root


def _load(bad, root):
    return data.load_cifar10(bad, train=True, verify=False)


def _prepare(bad, root):
    return data.prepare_cifar10(bad, root, verify=False)


@pytest.mark.parametrize("entry", [_load, _prepare], ids=["load_cifar10", "prepare_cifar10"])
@pytest.mark.parametrize("damage", list(BATCH_DAMAGE))
def test_a_damaged_batch_file_is_named_and_nothing_is_written(copies, tmp_path, entry, damage):
    _, bad, root = copies
    BATCH_DAMAGE[damage](bad / data.RELEASE_DIR / "data_batch_3")
    before = snapshot(tmp_path)
    with pytest.raises((data.CorruptDataError, data.DataUnavailableError)) as err:
        entry(bad, root)
    assert_clean(err, "data_batch_3", before=before, folder=tmp_path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["missing", "truncated", "crafted", "a-folder"])
def test_a_damaged_batch_file_through_the_cli_is_one_line(copies, tmp_path, capsys, damage):
    _, bad, root = copies
    BATCH_DAMAGE[damage](bad / data.RELEASE_DIR / "data_batch_3")
    before = snapshot(tmp_path)
    assert cli.main(["data", "prepare", "--from", str(bad), "--no-verify", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cifarkit: error: ")
    assert_clean(err, "data_batch_3", before=before, folder=tmp_path)


@pytest.mark.parametrize("damage", ["empty", "truncated", "random-bytes", "label-range"])
def test_a_damaged_batch_file_fails_the_md5_check_by_name(copies, tmp_path, damage):
    _, bad, _ = copies
    BATCH_DAMAGE[damage](bad / data.RELEASE_DIR / "data_batch_3")
    before = snapshot(tmp_path)
    with pytest.raises(data.CorruptDataError) as err:
        data.load_cifar10(bad, train=False)  # torchvision checks every file, not just this split's
    assert_clean(err, "data_batch_3", "md5", before=before, folder=tmp_path)


# --- damaged cache files ---------------------------------------------------------------------------

def _resave(path: Path, change):
    blob = torch.load(path, weights_only=True)
    torch.save(change(blob), path)


CACHE_DAMAGE = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:3000]),
    "random-bytes": lambda p: p.write_bytes(np.random.default_rng(2).bytes(5000)),
    "crafted": lambda p: torch.save({"x": _Evil(p.parent / "pwned"), "y": None}, p),
    "crafted-raw-pickle": lambda p: p.write_bytes(pickle.dumps({"x": _Evil(p.parent / "pwned"), "y": None})),
    "not-a-dict": lambda p: torch.save(torch.zeros(3), p),
    "missing-key": lambda p: _resave(p, lambda b: {"x": b["x"]}),
    "wrong-shape": lambda p: _resave(p, lambda b: {"x": b["x"][:, :, :16], "y": b["y"]}),
    "wrong-dtype": lambda p: _resave(p, lambda b: {"x": b["x"].float(), "y": b["y"]}),
    "label-range": lambda p: _resave(p, lambda b: {"x": b["x"], "y": b["y"] + 10}),
    "numpy-inside": lambda p: _resave(p, lambda b: {"x": b["x"].numpy(), "y": b["y"].numpy()}),
}


@pytest.fixture
def cached(tmp_path, small):
    """A data root with the release files and caches built from them; returns the test cache."""
    root = tmp_path / "root"
    write_release(root / data.RELEASE_DIR)
    data.prepare_cifar10(root, root, verify=False)
    return root / "cifar10-test-unverified.pt"


@pytest.mark.parametrize("entry", ["load_cifar10", "load_data"])
@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_a_damaged_cache_is_named_and_left_alone(cached, tmp_path, entry, damage):
    CACHE_DAMAGE[damage](cached)
    before = snapshot(tmp_path)
    with pytest.raises(data.CorruptDataError) as err:
        if entry == "load_cifar10":
            data.load_cifar10(cached.parent, train=False, verify=False)
        else:
            data.load_data("cifar10-unverified", root=cached.parent, verbose=False)
    assert_clean(err, cached, "Delete it", before=before, folder=tmp_path)  # the user decides
    assert not (cached.parent / "pwned").exists()


@pytest.mark.parametrize("damage", ["truncated", "crafted", "wrong-shape"])
def test_auto_reports_a_damaged_cache_in_one_line_and_falls_back(cached, tmp_path, capsys, damage):
    CACHE_DAMAGE[damage](cached)
    before = snapshot(tmp_path)
    assert data.load_data("auto", n_train=20, n_test=10, root=cached.parent).synthetic
    complaint = [line for line in capsys.readouterr().out.splitlines() if "could not use them" in line]
    assert len(complaint) == 1 and str(cached) in complaint[0]
    assert snapshot(tmp_path) == before


def test_a_folder_where_the_cache_goes_is_skipped_and_not_written(tmp_path, small):
    root = tmp_path / "root"
    write_release(root / data.RELEASE_DIR)
    (root / "cifar10-test-unverified.pt").mkdir()
    with pytest.warns(UserWarning, match="could not write the cache .*cifar10-test-unverified.pt"):
        x, _ = data.load_cifar10(root, train=False, verify=False)
    assert len(x) == 50 and (root / "cifar10-test-unverified.pt").is_dir()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar10-test-unverified.pt"]


# --- where things go: folders and files in the wrong place, read-only targets ---------------------

def test_prepare_refuses_a_folder_where_a_cache_goes(copies, tmp_path):
    good, _, root = copies
    (root / "cifar10-test-unverified.pt").unlink()
    (root / "cifar10-test-unverified.pt").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(OSError) as err:
        data.prepare_cifar10(good, root, verify=False)
    assert_clean(err, "cifar10-test-unverified.pt", before=before, folder=tmp_path)


def test_prepare_into_a_data_root_that_is_a_file(copies, tmp_path, capsys):
    good, _, _ = copies
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    before = snapshot(tmp_path)
    with pytest.raises(OSError) as err:
        data.prepare_cifar10(good, target, verify=False)
    assert_clean(err, target, before=before, folder=tmp_path)
    assert cli.main(["data", "prepare", "--from", str(good), "--no-verify", "--root", str(target)]) == 1
    assert_clean(capsys.readouterr().err, target, before=before, folder=tmp_path)


@pytest.mark.parametrize("source", ["a-file", "no-release-inside"])
def test_prepare_from_something_that_is_not_a_copy(tmp_path, capsys, source):
    src = tmp_path / source
    src.write_text("x") if source == "a-file" else src.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(data.DataUnavailableError) as err:
        data.prepare_cifar10(src, tmp_path / "root")
    assert_clean(err, src, "cifar-10-batches-py", before=before, folder=tmp_path)
    assert cli.main(["data", "prepare", "--from", str(src), "--root", str(tmp_path / "root")]) == 1
    assert_clean(capsys.readouterr().err, src, before=before, folder=tmp_path)


def _permission_denied(obj, path):
    raise PermissionError(13, "Permission denied", str(path))


@pytest.mark.parametrize("how", ["chmod", "simulated"])
def test_prepare_into_a_read_only_root_changes_nothing(copies, tmp_path, monkeypatch, how):
    good, _, root = copies
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root ignores file permissions")
        root.chmod(0o555)
    else:
        monkeypatch.setattr(data, "atomic_save", _permission_denied)
    before = snapshot(tmp_path)
    try:
        with pytest.raises(OSError) as err:
            data.prepare_cifar10(good, root, verify=False)
    finally:
        root.chmod(0o755)
    assert_clean(err, root, "Permission denied", before=before, folder=tmp_path)


def test_loading_from_a_read_only_root_still_works(tmp_path, small, monkeypatch):
    root = tmp_path / "root"
    write_release(root / data.RELEASE_DIR)
    monkeypatch.setattr(data, "atomic_save", _permission_denied)
    before = snapshot(tmp_path)
    with pytest.warns(UserWarning, match="could not write the cache .*Permission denied") as caught:
        x, _ = data.load_cifar10(root, train=False, verify=False)
    assert len(x) == 50 and snapshot(tmp_path) == before
    assert len(str(caught[-1].message).splitlines()) == 1


def test_a_missing_data_root_is_not_created_by_a_failed_load(tmp_path):
    root = tmp_path / "nowhere" / "data"
    with pytest.raises(data.DataUnavailableError) as err:
        data.load_cifar10(root, train=False)
    assert_clean(err, root)
    assert not (tmp_path / "nowhere").exists()


# --- the data CLI ---------------------------------------------------------------------------------

def test_cli_download_while_offline_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    assert cli.main(["data", "download", "--root", str(tmp_path / "root")]) == 1
    assert_clean(capsys.readouterr().err, "CIFARKIT_OFFLINE=1")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("args", [["data", "prepare"], ["data", "prepare", "--from"],
                                  ["data", "info", "--bogus"], ["data"]])
def test_cli_bad_usage_is_one_line_and_exit_2(capsys, args):
    with pytest.raises(SystemExit) as err:
        cli.main(args)
    assert err.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_info_on_a_root_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert cli.main(["data", "info", "--root", str(target)]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out and target.read_text() == "x"
