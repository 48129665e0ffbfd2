"""The runtime helpers: settings from the environment, `in_kernel`, `eval_mode`, atomic writes and
bounded downloads (`cifarkit.download`)."""
import os
from pathlib import Path

import pytest
import torch

from cifarkit import download, files, runtime, settings
from cifarkit.course import settings as course_settings


# --- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("var, read", [(settings.NETWORK_ENV, settings.network),
                                       (settings.OFFLINE_ENV, settings.offline)])
def test_a_malformed_flag_is_a_one_line_error_naming_the_variable(monkeypatch, var, read):
    monkeypatch.setenv(var, "maybe")
    with pytest.raises(ValueError) as err:
        read()
    assert str(err.value) == f"environment variable {var}='maybe': use 1 or 0"


@pytest.mark.parametrize("value, expected", [("1", True), (" YES ", True), ("on", True), ("0", False),
                                             ("false", False), ("off", False), ("", None)])
def test_network_flag_values(monkeypatch, value, expected):
    monkeypatch.setenv(settings.NETWORK_ENV, value)
    assert settings.network() is expected
    monkeypatch.delenv(settings.NETWORK_ENV)
    assert settings.network() is None


def test_offline_is_false_unless_set(monkeypatch):
    monkeypatch.delenv(settings.OFFLINE_ENV, raising=False)
    assert settings.offline() is False
    monkeypatch.setenv(settings.OFFLINE_ENV, "1")
    assert settings.offline() is True


def test_headless_is_lenient(monkeypatch):
    for value, expected in (("1", True), ("TRUE", True), ("yes", True), ("0", False), ("typo", False)):
        monkeypatch.setenv(settings.HEADLESS_ENV, value)
        assert settings.headless() is expected, value
    monkeypatch.delenv(settings.HEADLESS_ENV)
    assert settings.headless() is False


def test_paths_and_profile_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.DATA_ENV, "~/cifar-here")
    assert settings.data_dir() == Path.home() / "cifar-here"
    monkeypatch.setenv(settings.DATA_ENV, "")
    assert settings.data_dir() is None
    monkeypatch.setenv(course_settings.RESULTS_DIR_ENV, str(tmp_path / "run"))
    assert course_settings.results_dir() == tmp_path / "run"
    monkeypatch.delenv(course_settings.RESULTS_DIR_ENV)
    assert course_settings.results_dir() == Path("results")
    monkeypatch.delenv(course_settings.ARTIFACTS_ENV, raising=False)
    assert course_settings.artifacts_dir() is None
    monkeypatch.setenv(course_settings.ARTIFACTS_ENV, str(tmp_path / "a"))
    assert course_settings.artifacts_dir() == tmp_path / "a"
    monkeypatch.setenv(course_settings.PROFILE_ENV, "")
    assert course_settings.profile() is None
    monkeypatch.setenv(course_settings.PROFILE_ENV, "full")
    assert course_settings.profile() == "full"


# --- runtime -------------------------------------------------------------------------------------

class _Shell:
    kernel = object()


def test_in_kernel_and_its_live_variant(monkeypatch):
    import IPython
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert runtime.in_kernel() is False and runtime.in_kernel(live=True) is False
    monkeypatch.setattr(IPython, "get_ipython", lambda: _Shell())
    monkeypatch.setenv(settings.HEADLESS_ENV, "1")
    assert runtime.in_kernel() is True  # papermill / nbval: a kernel, but nobody watches it live
    assert runtime.in_kernel(live=True) is False
    monkeypatch.delenv(settings.HEADLESS_ENV)
    assert runtime.in_kernel(live=True) is True


def _net():
    return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(2))


def test_eval_mode_restores_train_mode_even_when_the_body_raises():
    net = _net().train()
    with pytest.raises(RuntimeError, match="boom"):
        with runtime.eval_mode(net) as model:
            assert model is net and not any(m.training for m in net.modules())
            raise RuntimeError("boom")
    assert all(m.training for m in net.modules())


def test_eval_mode_leaves_an_eval_model_in_eval():
    net = _net().eval()
    with runtime.eval_mode(net):
        pass
    assert not any(m.training for m in net.modules())


# --- files ---------------------------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_and_no_temp_when_the_body_raises(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    with files.atomic_write(path) as f:
        f.write(b"old")
    with pytest.raises(ValueError, match="half-way"):
        with files.atomic_write(path) as f:
            f.write(b"new, but")
            raise ValueError("half-way")
    assert path.read_bytes() == b"old"
    assert os.listdir(path.parent) == ["out.bin"]


def test_open_url_bounds_the_lookup_and_passes_the_timeout(monkeypatch):
    seen = []
    monkeypatch.setattr(download, "resolve_host", lambda host, timeout: seen.append(("lookup", host, timeout)))
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda request, timeout: seen.append(("open", request.full_url, timeout)) or "response")
    monkeypatch.setattr(download.urllib.request, "getproxies", lambda: {})
    assert download.open_url("https://example.invalid/x.pth", 3.0) == "response"
    assert seen == [("lookup", "example.invalid", 3.0), ("open", "https://example.invalid/x.pth", 3.0)]
    seen.clear()
    monkeypatch.setattr(download.urllib.request, "getproxies", lambda: {"https": "http://proxy:3128"})
    download.open_url("https://example.invalid/x.pth")
    assert seen == [("open", "https://example.invalid/x.pth", download.DOWNLOAD_TIMEOUT_S)]  # the proxy resolves


def test_the_data_and_weights_downloads_share_one_timeout():
    from cifarkit import data, weights
    assert data.DOWNLOAD_TIMEOUT_S is download.DOWNLOAD_TIMEOUT_S is weights.DOWNLOAD_TIMEOUT_S
