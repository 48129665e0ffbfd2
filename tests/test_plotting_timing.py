import time

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from cifarkit import plotting
from cifarkit.plotting import Animator
from cifarkit.timing import Timer


def test_headless_animator_saves_a_real_png(tmp_path):
    anim = Animator(xlabel="epoch", ylabel="value", legend=["loss", "acc"], xlim=(1, 5))
    for e in range(1, 6):
        anim.add(e, [1.0 / e, 0.2 * e])
    assert anim.renders == 0, "headless: nothing is drawn while points arrive"
    anim.close()
    path = anim.save(tmp_path / "curves.png")
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 10, "the PNG must show something, not a blank canvas"
    assert anim.X == [[1, 2, 3, 4, 5]] * 2 and anim.Y[0][-1] == pytest.approx(0.2)


def test_no_pyplot_figures_leak():
    before = plt.get_fignums()
    for _ in range(5):
        with Animator(legend=["a"]) as a:
            a.add(1, 1.0)
    assert plt.get_fignums() == before


def test_add_validates_its_input():
    a = Animator()
    a.add(1, [1.0, 2.0])
    with pytest.raises(ValueError):
        a.add(2, [1.0])
    with pytest.raises(ValueError):
        a.add([1, 2, 3], [1.0, 2.0])


def test_live_animator_updates_one_display_in_place(monkeypatch):
    shown, updates = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    def fake_display(obj, display_id=None):
        shown.append(obj)
        return Handle()
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", fake_display)
    monkeypatch.setattr(plotting, "in_kernel", lambda: True)
    anim = Animator(legend=["x"], live=True)
    for e in range(4):
        anim.add(e, e * e)
    anim.close()
    assert len(shown) == 1 and len(updates) == 3
    assert updates[0].data != updates[-1].data  # each update is a new render
    assert updates[-1].data[:8] == b"\x89PNG\r\n\x1a\n"


def test_headless_animator_in_a_kernel_displays_once_on_close(monkeypatch):
    shown = []
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None: shown.append(obj))
    monkeypatch.setattr(plotting, "in_kernel", lambda: True)
    anim = Animator(live=False)
    for e in range(4):
        anim.add(e, e)
    assert shown == []
    anim.close()
    anim.close()
    assert len(shown) == 1


def test_animator_as_trainer_callback(tmp_path):
    from cifarkit import TensorLoader, Trainer
    from conftest import random_images, tiny_cnn
    x, y = random_images(64)
    anim = Animator()
    Trainer(3, precision="32", progress=False, log=False, callbacks=[anim]).fit(
        tiny_cnn(), TensorLoader(x, y, 32, tag="random pixels"), TensorLoader(x, y, 64))
    assert anim.legend == ["train loss", "train acc", "val acc"]
    assert [len(xs) for xs in anim.X] == [3, 3, 3]
    assert anim.title == "random pixels"
    assert anim.save(tmp_path / "fit.png").stat().st_size > 1000


def test_animator_is_a_callback_and_callbacks_do_not_import_plotting():
    import ast
    import inspect

    from cifarkit import callbacks
    assert isinstance(Animator(), callbacks.Callback)
    imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(callbacks)))
                if isinstance(node, ast.ImportFrom)}
    assert "plotting" not in imported and "cifarkit.plotting" not in imported  # no import cycle


def test_timer_records_laps():
    t = Timer()
    for _ in range(3):
        with t:
            time.sleep(0.01)
    assert len(t.times) == 3 and all(x >= 0.009 for x in t.times)
    assert t.sum() == pytest.approx(sum(t.times))
    assert t.avg() == pytest.approx(t.sum() / 3)
    assert t.cumsum()[-1] == pytest.approx(t.sum()) and t.cumsum()[0] == pytest.approx(t.times[0])
    assert t.rate(30) == pytest.approx(30 / t.sum())
    assert Timer().avg() == 0.0


def test_timer_stop_before_start_is_an_error():
    with pytest.raises(RuntimeError):
        Timer().stop()
