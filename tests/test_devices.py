"""Precision and dtype choices per device: AVX2 mode on a CPU, compute capability on a GPU."""
import os
import subprocess
import sys

import pytest
import torch

from cifarkit import devices, optim, settings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (card, compute capability, what `resolve_precision("auto")` must pick, `fast_matmul_dtype`)
CARDS = [("T4", (7, 5), "16-mixed", torch.float16),
         ("V100", (7, 0), "16-mixed", torch.float16),
         ("A100", (8, 0), "bf16-mixed", torch.bfloat16),
         ("H100", (9, 0), "bf16-mixed", torch.bfloat16),
         ("P100", (6, 0), "32", torch.float32)]


@pytest.fixture
def fresh_caches():
    devices.cpu_has_fast_bf16.cache_clear()
    optim.fast_matmul_dtype.cache_clear()
    yield
    devices.cpu_has_fast_bf16.cache_clear()
    optim.fast_matmul_dtype.cache_clear()


@pytest.mark.parametrize("card, capability, precision, dtype", CARDS, ids=[c[0] for c in CARDS])
def test_gpu_precision_follows_the_compute_capability(monkeypatch, fresh_caches, card, capability, precision,
                                                      dtype):
    """bf16 only from compute capability 8.0, even where torch says bf16 is 'supported' (emulated on a T4)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 answers
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert devices.resolve_precision("auto", cuda) == precision
    assert devices.resolve_precision(None, "cuda") == precision
    assert optim.fast_matmul_dtype(cuda) is dtype
    assert devices.resolve_precision("bf16", cuda) == "bf16-mixed", "an explicit choice is kept"


def test_a_trainer_on_a_t4_scales_float16_gradients(monkeypatch, fresh_caches):
    """On a card without native bf16 the Trainer trains in float16 with a GradScaler."""
    from cifarkit import Trainer
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    trainer = Trainer(1, device="cuda", progress=False, log=False)
    assert trainer.precision == "16-mixed" and trainer.channels_last
    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)  # no real GPU here
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device: ("scaler", device))
    monkeypatch.setattr(Trainer, "_emit", lambda self, *a, **k: None)
    monkeypatch.setattr(trainer, "max_epochs", 0)
    trainer.fit(model, [(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))])
    assert trainer.scaler == ("scaler", "cuda")
    assert trainer.history.meta["device"] == "Tesla T4, precision 16-mixed"


@pytest.mark.parametrize("env, fast", [({}, None), ({"CIFARKIT_CPU": "avx2"}, False),
                                       ({"CIFARKIT_CPU": "native"}, None),
                                       ({"ONEDNN_MAX_CPU_ISA": "avx2"}, False),
                                       ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, False),
                                       ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, None)])
def test_cpu_bf16_answers_no_when_the_process_is_limited_to_avx2(monkeypatch, fresh_caches, env, fast):
    """The kit's bf16 detection honours its AVX2 mode and torch's oneDNN switch, on any hardware
    (None: the hardware's own answer, here pretended native)."""
    for name in ("CIFARKIT_CPU", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    expected = True if fast is None else fast
    assert devices.cpu_has_fast_bf16() is expected
    assert devices.resolve_precision("auto", "cpu") == ("bf16-mixed" if expected else "32")
    assert optim.fast_matmul_dtype("cpu") is (torch.bfloat16 if expected else torch.float32)


def test_aten_capability_below_avx512_means_no_native_bf16(monkeypatch, fresh_caches):
    monkeypatch.delenv("CIFARKIT_CPU", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert not devices.cpu_has_fast_bf16()


def test_cpu_mode_refuses_an_unknown_value_in_one_line(monkeypatch):
    monkeypatch.setenv("CIFARKIT_CPU", "avx9")
    with pytest.raises(ValueError, match=r"CIFARKIT_CPU='avx9': use 'avx2' or 'native'"):
        settings.cpu_mode()


def test_avx2_mode_limits_torchs_kernels_in_a_fresh_process():
    """`CIFARKIT_CPU=avx2` alone, set before Python starts and `import torch` runs first (as in a
    notebook): the kit sets torch's switches, torch's kernels stop at AVX2 and precision is fp32."""
    code = ("import torch, os, cifarkit as ck\n"
            "from cifarkit import devices\n"
            "x = torch.randn(64, 64); (x @ x).sum()\n"
            "print(torch.backends.cpu.get_cpu_capability(), devices.resolve_precision('auto', 'cpu'),"
            " os.environ['ONEDNN_MAX_CPU_ISA'], os.environ['MKL_ENABLE_INSTRUCTIONS'])\n")
    env = {k: v for k, v in os.environ.items() if k not in settings.TORCH_AVX2_ENV}
    env.update(CIFARKIT_CPU="avx2", PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    capability, precision, onednn, mkl = out.stdout.split()
    assert capability in ("AVX2", "DEFAULT") and precision == "32" and onednn == mkl == "AVX2"


def test_float16_orthogonalisation_matches_float32():
    """A T4 orthogonalises Muon's updates in float16 (`cuda_dtype`): its singular values must be those
    of the float32 computation (computed here on the CPU, which has float16 matrix products too)."""
    from cifarkit.optim import newton_schulz
    torch.manual_seed(0)
    for shape in ((64, 576), (2304, 256)):
        m = torch.randn(*shape)
        ref = torch.linalg.svdvals(newton_schulz(m, dtype=torch.float32))
        half = newton_schulz(m, dtype=torch.float16)
        assert half.dtype is torch.float32 and torch.isfinite(half).all()
        assert torch.allclose(torch.linalg.svdvals(half), ref, atol=2e-3)


class _Narrow(torch.nn.Module):
    channels_last = False  # as a network too narrow to gain from the layout declares

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("device, precision, model, requested, expected", [
    ("cpu", "32", None, None, True),            # oneDNN's convolutions want it, in fp32 too
    ("cpu", "bf16-mixed", None, None, True),
    ("cpu", "32", _Narrow(), None, False),      # the model's own preference
    ("cpu", "32", _Narrow(), True, True),       # an explicit request wins
    ("cuda", "32", None, None, False),
    ("cuda", "16-mixed", _Narrow(), None, True),  # on a GPU the tensor cores decide
    ("cpu", "32", None, False, False)])
def test_channels_last_rule(device, precision, model, requested, expected):
    assert devices.use_channels_last(precision, torch.device(device), model, requested) is expected


def test_the_trainer_applies_the_layout_rule_when_it_gets_the_model(one_thread):
    from conftest import TinyNet
    from cifarkit import Trainer
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))]
    for model, conv, expected in ((TinyNet(), "conv1", True), (_Narrow(), "conv", False)):
        trainer = Trainer(1, precision="32", progress=False, log=False)
        trainer.fit(model, batches)
        assert trainer.channels_last is expected
        assert getattr(model, conv).weight.is_contiguous(memory_format=torch.channels_last) is expected
