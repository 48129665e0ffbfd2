"""`Animator`: d2l's live plot, rebuilt to behave in Jupyter, papermill, nbval and scripts.

    animator = Animator(xlabel="epoch", legend=["train loss", "train acc", "test acc"])
    for epoch in range(10):
        ...
        animator.add(epoch + 1, (loss, train_acc, test_acc))

In a live Jupyter kernel the figure is shown once and then redrawn in place through a display
handle (no `clear_output`, which confuses nbval and flickers). Headless (scripts, tests, and runs
with CIFARKIT_HEADLESS=1 such as `cifarkit run`) nothing is shown while it runs; `close()` draws
the final figure once (displaying it when a kernel is present) and `save(path)` writes a PNG.

Figures are built with `matplotlib.figure.Figure`, not `pyplot`, so none is left open behind
your back however many Animators a notebook creates.

It is also a `Trainer` callback: `Trainer(callbacks=[Animator()])` plots the train loss, train
accuracy and validation accuracy after every epoch.
"""
from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .callbacks import Callback
from .runtime import in_kernel

DEFAULT_METRICS = ("train_loss", "train_acc", "val_acc")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show_figure(fig: Figure, dpi: int = 100) -> None:
    """Display a `Figure` in a notebook as a PNG (a no-op outside a kernel). Notebook 01 introduces it."""
    if not in_kernel():
        return
    from IPython.display import Image, display
    display(Image(data=figure_png(fig, dpi)))


class Animator(Callback):
    """Plot data that arrives one point at a time, updating a single figure in place.

    Args follow d2l's `Animator`: `xlabel`, `ylabel`, `legend`, `xlim`, `ylim`, `xscale`, `yscale`,
    `fmts`, `nrows`, `ncols`, `figsize`. Extra:
        title: shown above the axes (e.g. `data.label`, so synthetic runs are marked).
        metrics: when used as a Trainer callback, the history columns to plot
            (default: train_loss, train_acc, val_acc).
        live: force live updating on/off (default: on in an interactive kernel).
    Notebook 01 introduces it.
    """

    def __init__(self, xlabel=None, ylabel=None, legend=None, xlim=None, ylim=None, xscale="linear",
                 yscale="linear", fmts=("-", "m--", "g-.", "r:", "c-", "y--", "k-."), nrows=1, ncols=1,
                 figsize=(4.5, 3.0), title=None, metrics=None, live=None):
        self.metrics = tuple(metrics) if metrics is not None else None
        self.legend = list(legend) if legend is not None else None
        self.fmts = tuple(fmts)
        self.fig = Figure(figsize=figsize)
        axes = self.fig.subplots(nrows, ncols, squeeze=False)
        self.axes = axes.ravel().tolist()
        self._axis_config = dict(xlabel=xlabel, ylabel=ylabel, xlim=xlim, ylim=ylim, xscale=xscale,
                                 yscale=yscale)
        self.title = title
        self.X: list[list] | None = None
        self.Y: list[list] | None = None
        self.live = in_kernel(live=True) if live is None else live
        self._handle = None
        self._closed = False
        self.renders = 0

    # --- d2l API --------------------------------------------------------------------------------
    def add(self, x, y) -> None:
        """Add one point per curve: `x` a number (or one per curve), `y` a number or a sequence."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if len(x) != n:
            raise ValueError(f"got {len(x)} x values for {n} y values")
        if self.X is None:
            self.X, self.Y = [[] for _ in range(n)], [[] for _ in range(n)]
        if n != len(self.Y):
            raise ValueError(f"this Animator has {len(self.Y)} curves, got {n} values")
        for i, (a, b) in enumerate(zip(x, y)):
            if a is not None and b is not None:
                self.X[i].append(float(a))
                self.Y[i].append(float(b))
        if self.live:
            self._draw()
            self._publish()

    def _draw(self) -> None:
        ax = self.axes[0]
        ax.cla()
        for i, (xs, ys) in enumerate(zip(self.X or [], self.Y or [])):
            label = self.legend[i] if self.legend and i < len(self.legend) else None
            ax.plot(xs, ys, self.fmts[i % len(self.fmts)], label=label)
        c = self._axis_config
        ax.set_xlabel(c["xlabel"] or "")
        ax.set_ylabel(c["ylabel"] or "")
        ax.set_xscale(c["xscale"])
        ax.set_yscale(c["yscale"])
        if c["xlim"]:
            ax.set_xlim(c["xlim"])
        if c["ylim"]:
            ax.set_ylim(c["ylim"])
        xs_all = [x for xs in (self.X or []) for x in xs]
        if xs_all and all(float(x).is_integer() for x in xs_all):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: no 1.25, 1.5, ...
        if self.legend:
            ax.legend(loc="best", fontsize="small")
        ax.grid(True, alpha=0.3)
        if self.title:
            self.fig.suptitle(self.title, fontsize="medium")
        self.renders += 1

    def _publish(self) -> None:
        if not in_kernel():
            return
        from IPython.display import Image, display
        img = Image(data=figure_png(self.fig))
        if self._handle is None:
            self._handle = display(img, display_id=True)
        else:
            self._handle.update(img)

    def close(self) -> None:
        """Finish: draw the final figure; headless in a kernel, display it once."""
        if self._closed:
            return
        self._closed = True
        self._draw()
        if not self.live:
            self._publish()

    def save(self, path) -> Path:
        """Write the current figure as a PNG file and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._draw()
        path.write_bytes(figure_png(self.fig))
        return path

    def __enter__(self) -> "Animator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- Trainer callback -----------------------------------------------------------------------
    def on_fit_start(self, trainer, model) -> None:
        metrics = self.metrics or DEFAULT_METRICS
        if self.legend is None:
            self.legend = [m.replace("_", " ") for m in metrics]
        if self._axis_config["xlabel"] is None:
            self._axis_config["xlabel"] = "epoch"
        if self.title is None:
            self.title = trainer.history.meta.get("data")
        if self._axis_config["xlim"] is None:
            self._axis_config["xlim"] = (1, max(trainer.max_epochs, 2))
        for record in trainer.history.records:  # after a resume, replay the finished epochs
            self.on_epoch_end(trainer, model, record)

    def on_epoch_end(self, trainer, model, record) -> None:
        self.add(record["epoch"], [record.get(m) for m in (self.metrics or DEFAULT_METRICS)])

    def on_fit_end(self, trainer, model) -> None:
        self.close()
