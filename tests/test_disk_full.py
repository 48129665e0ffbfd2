"""A full disk (issue 29.4): one line naming the file that could not be written, the previous
version kept, no temporary file left. Simulated by a file whose writes fail with ENOSPC, and for
real on a 3 MB tmpfs where this process may mount one (root on Linux; skipped elsewhere)."""
import errno
import json
import os
import shutil
import subprocess

import pytest
import torch

from cifarkit import files
from cifarkit.course.results import record_results


class _FullDisk:
    """Wraps the temporary file of `atomic_write`: writes fail with ENOSPC after `room` bytes."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """After this fixture, every `atomic_write` finds the disk full after 64 bytes."""
    real = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: _FullDisk(real(fd, mode), 64))


def _one_line_naming(exc_info, path):
    message = str(exc_info.value)
    assert isinstance(exc_info.value, OSError) and exc_info.value.errno == errno.ENOSPC
    assert message == f"[Errno 28] No space left on device: could not write {path}"
    assert "\n" not in message


def test_a_checkpoint_save_onto_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    files.atomic_save({"w": torch.zeros(4)}, path)
    real = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: _FullDisk(real(fd, mode), 64))
    with pytest.raises(OSError) as info:
        files.atomic_save({"w": torch.zeros(100_000)}, path)  # torch words it as a RuntimeError
    _one_line_naming(info, path)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert torch.load(path)["w"].shape == (4,)
    assert os.listdir(tmp_path) == ["ck.pt"], "no temporary file left"


def test_metrics_onto_a_full_disk_names_the_file_and_keep_the_previous_ones(tmp_path, monkeypatch, full_disk):
    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path))
    (tmp_path / "01_x.metrics.json").write_text('{"acc": 0.5}')
    with pytest.raises(OSError) as info:
        record_results("01_x", {"acc": 0.75, "history": list(range(100))})
    _one_line_naming(info, tmp_path / "01_x.metrics.json")
    assert json.loads((tmp_path / "01_x.metrics.json").read_text()) == {"acc": 0.5}
    assert os.listdir(tmp_path) == ["01_x.metrics.json"]


def test_other_errors_pass_unchanged(tmp_path):
    with pytest.raises(ValueError, match="half-way"):
        with files.atomic_write(tmp_path / "x") as f:
            raise ValueError("half-way")
    assert files.disk_full_error(ValueError("x"), tmp_path) is None
    assert files.disk_full_error(PermissionError(errno.EACCES, "denied"), tmp_path) is None


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 3 MB tmpfs at tmp_path/mnt, unmounted afterwards; skipped where it cannot be mounted."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root on Linux")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)


def test_a_real_full_tmpfs(tiny_tmpfs):
    path = tiny_tmpfs / "ck.pt"
    files.atomic_save({"w": torch.zeros(1000)}, path)
    with pytest.raises(OSError) as info:
        files.atomic_save({"w": torch.zeros(2_000_000)}, path)  # 8 MB onto 3 MB
    _one_line_naming(info, path)
    assert torch.load(path)["w"].shape == (1000,)
    assert os.listdir(tiny_tmpfs) == ["ck.pt"]
    with pytest.raises(OSError) as info:
        files.atomic_write_text(tiny_tmpfs / "summary.json", "x" * 5_000_000)
    _one_line_naming(info, tiny_tmpfs / "summary.json")
    assert os.listdir(tiny_tmpfs) == ["ck.pt"]
