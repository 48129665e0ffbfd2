"""Turn a notebook run into reveal.js slide decks.

`build_slides` reads a run directory written by
`cifarkit.course.runner.run_notebooks` and writes, into
``<out_dir>/<run name>/``:

* ``<stem>.slides.html``: one deck per executed notebook, made with
  nbconvert's ``SlidesExporter`` (the same as ``jupyter nbconvert --to
  slides``);
* ``overview.slides.html``: one deck with the run summary, a table of the
  notebooks, each notebook's metrics and every extracted figure, the PNGs
  embedded as base64 so the file is self-contained, and every notebook's
  verdict table (the claims it recorded, see `cifarkit.course.summary`).

Only files inside the run directory are read: a figure or executed notebook
named in ``summary.json`` that resolves (symlinks included) outside it is
refused, as is a ``summary.json`` of the wrong shape, each with one line
naming the file and the problem, before any deck is written.

Slide rules (applied to an in-memory copy; the executed notebooks are never
modified):

* **Tags win.** If any cell of a notebook has ``metadata.slideshow.slide_type``
  (set in Jupyter with *View > Cell toolbar > Slideshow*, or the property
  inspector in JupyterLab), the notebook's slide types are used as they are.
* **Otherwise slides are inferred:** a markdown cell starting with a ``#``
  or ``##`` heading starts a new slide, one starting with a ``###`` (or
  deeper) heading a new sub-slide (reveal.js's vertical stack); a code cell
  with an image output gets a sub-slide of its own so the figure has room;
  cells with nothing visible are skipped; everything else continues the
  current slide.
* **Code input is hidden** in every deck: the slides show markdown and
  outputs. Tag a code cell ``show-input`` to keep its code on the slide.
  The usual nbconvert tags work too: ``remove-cell`` drops the cell,
  ``remove-input``/``hide-input`` hides its code even with ``show-input``
  absent, ``remove-output``/``hide-output`` drops its outputs.
* Output noise is dropped: ``stderr`` streams (warnings, progress bars) and
  widget outputs, which cannot render without a live kernel.

The decks load reveal.js from a CDN (nbconvert's default,
``https://unpkg.com/reveal.js@4.0.2``), so presenting needs a network
connection; pass ``reveal_url_prefix`` to point at a local copy instead
(see ``slides/README.md``).
"""
from __future__ import annotations

import base64
import copy
import glob
import os
import re
from pathlib import Path
from typing import Any, Mapping

from .summary import (SYNTHETIC_LABEL, check_summary, claims_markdown, differs_markdown, metrics_markdown, ran,
                      notebooks_table_markdown, read_summary, run_table_markdown, verdicts_markdown)

__all__ = ["build_slides", "prepare_for_slides", "overview_notebook", "SHOW_INPUT_TAG"]

#: Tag that keeps a code cell's source visible on its slide.
SHOW_INPUT_TAG = "show-input"

_REMOVE_CELL_TAGS = {"remove-cell"}
_REMOVE_INPUT_TAGS = {"remove-input", "hide-input"}
_REMOVE_OUTPUT_TAGS = {"remove-output", "hide-output"}
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_HEADING = re.compile(r"^(#{1,6})\s+\S")
_MAX_METRIC_ROWS = 14


def _tags(cell: Mapping[str, Any]) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def _has_slide_metadata(nb: Any) -> bool:
    return any((cell.get("metadata", {}).get("slideshow") or {}).get("slide_type")
               for cell in nb.cells)


def _heading_level(source: str) -> int:
    for line in source.splitlines():
        if line.strip():
            match = _HEADING.match(line.strip())
            return len(match.group(1)) if match else 0
    return 0


def _keep_output(output: Mapping[str, Any]) -> bool:
    if output.get("output_type") == "stream" and output.get("name") == "stderr":
        return False
    data = output.get("data") or {}
    return _WIDGET_MIME not in data


def _has_image(cell: Mapping[str, Any]) -> bool:
    return any(mime in (out.get("data") or {}) for out in cell.get("outputs", [])
               for mime in _IMAGE_MIMES)


def _set_slide_type(cell: Any, slide_type: str) -> None:
    slideshow = dict(cell.metadata.get("slideshow") or {})
    slideshow["slide_type"] = slide_type
    cell.metadata["slideshow"] = slideshow  # NotebookNode converts the dict on assignment


def prepare_for_slides(nb: Any) -> Any:
    """Return a copy of ``nb`` ready for the ``SlidesExporter``.

    Applies the slide rules of this module: drop ``remove-cell`` cells and
    noisy outputs, hide code input (unless tagged ``show-input``), and infer
    slide types when the notebook carries none. ``nb`` is not modified.
    """
    import nbformat

    nb = copy.deepcopy(nb)
    tagged = _has_slide_metadata(nb)
    cells = []
    for cell in nb.cells:
        tags = _tags(cell)
        if tags & _REMOVE_CELL_TAGS:
            continue
        if cell.cell_type == "code":
            outputs = [] if tags & _REMOVE_OUTPUT_TAGS else cell.get("outputs", [])
            cell.outputs = [o for o in outputs if _keep_output(o)]
            if SHOW_INPUT_TAG not in tags or tags & _REMOVE_INPUT_TAGS:
                cell.metadata["transient"] = {"remove_source": True}
        elif tags & _REMOVE_INPUT_TAGS:
            cell.metadata["transient"] = {"remove_source": True}
        cells.append(cell)
    nb.cells = cells

    if not tagged:
        for cell in nb.cells:
            hidden_source = cell.metadata.get("transient", {}).get("remove_source", False)
            if cell.cell_type == "markdown":
                level = _heading_level(cell.source)
                if not cell.source.strip():
                    slide_type = "skip"
                elif level in (1, 2):
                    slide_type = "slide"
                elif level >= 3:
                    slide_type = "subslide"
                else:
                    slide_type = "-"
            elif cell.cell_type == "code":
                if _has_image(cell):
                    slide_type = "subslide"
                elif cell.outputs or (not hidden_source and cell.source.strip()):
                    slide_type = "-"
                else:
                    slide_type = "skip"
            else:
                slide_type = "-" if cell.source.strip() else "skip"
            _set_slide_type(cell, slide_type)

    visible = [c for c in nb.cells
               if (c.metadata.get("slideshow") or {}).get("slide_type", "-") not in {"skip", "notes"}]
    if not visible:  # reveal.js needs at least one slide
        title = nb.metadata.get("cifarkit_title", "Notebook")
        cell = nbformat.v4.new_markdown_cell(f"# {title}\n\n(no visible content)")
        _set_slide_type(cell, "slide")
        nb.cells.insert(0, cell)
    return nb


def _exporter(reveal_url_prefix: str | None, options: Mapping[str, Any] | None = None):
    from nbconvert import SlidesExporter

    kwargs: dict[str, Any] = dict(
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        reveal_scroll=True,
    )
    if reveal_url_prefix:
        kwargs["reveal_url_prefix"] = reveal_url_prefix
    kwargs.update(options or {})
    return SlidesExporter(**kwargs)


def _png_output(png_bytes: bytes) -> Any:
    import nbformat

    return nbformat.v4.new_output(
        "display_data", data={"image/png": base64.b64encode(png_bytes).decode("ascii")}
    )


def _md(source: str, slide_type: str) -> Any:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(source)
    _set_slide_type(cell, slide_type)
    return cell


def _inside(run_dir: Path, name: str, what: str) -> Path:
    """``run_dir / name``, refused (ValueError) when it resolves outside the run directory."""
    root = run_dir.resolve()
    target = (run_dir / name).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"{run_dir / 'summary.json'}: {what} {name!r} is outside the run directory "
                         f"{str(run_dir)!r}; refusing to read it")
    return target


def _figure_paths(run_dir: Path, nb_entry: Mapping[str, Any]) -> list[Path]:
    listed = nb_entry.get("figures")
    if listed is not None:
        return [_inside(run_dir, f, f"figure of {nb_entry['name']}") for f in listed]
    stem = Path(nb_entry["name"]).stem
    found = [_inside(run_dir, p.relative_to(run_dir).as_posix(), f"figure of {nb_entry['name']}")
             for p in (run_dir / "figures").glob(f"{glob.escape(stem)}-*.png")]

    def index(path: Path) -> int:
        tail = path.stem.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    return sorted(found, key=index)


def overview_notebook(run_dir: str | os.PathLike, summary: Mapping[str, Any] | None = None) -> Any:
    """Build the overview deck's notebook from ``summary.json`` and the figures.

    Slides: the run (profile, device, precision, data source with synthetic
    data marked, timing, status), a table of notebooks with the verdict
    counts, then one slide per notebook with its verdict table and metrics,
    and one sub-slide per figure. Figures are embedded as base64 PNG outputs.
    The tables are the ones of ``summary.md`` (`cifarkit.course.summary`).
    """
    import nbformat

    run_dir = Path(run_dir)
    if summary is None:
        summary = read_summary(run_dir / "summary.json")
    else:
        summary = check_summary(summary, str(run_dir / "summary.json"))
    nbs = summary["notebooks"]
    figures = [_figure_paths(run_dir, nb) for nb in nbs]  # every path checked before any is read

    cells = []
    intro = [f"# cifarkit run\n\n`{summary.get('run_name') or run_dir.name}`", ""]
    if summary.get("synthetic_data"):
        intro += [f"**⚠ {SYNTHETIC_LABEL}**: results below are not CIFAR-10 numbers.", ""]
    intro += run_table_markdown(summary)
    cells.append(_md("\n".join(intro), "slide"))

    table = ["## Notebooks", ""] + notebooks_table_markdown(nbs, compact=True)
    table += verdicts_markdown(summary, heading="### Verdicts")
    cells.append(_md("\n".join(table), "slide"))

    for nb, nb_figures in zip(nbs, figures):
        stem = Path(nb["name"]).stem
        lines = [f"## {stem}", ""]
        if not ran(nb["status"]):
            lines += [f"**FAILED**: `{nb.get('error')}`", ""]
        lines += differs_markdown(nb)
        lines += claims_markdown(nb.get("claims") or [])
        m = nb.get("metrics")
        if m:
            lines += metrics_markdown(m, max_rows=_MAX_METRIC_ROWS, max_items=5,
                                      overflow="more in summary.md")
        else:
            lines.append("_No metrics written._")
        cells.append(_md("\n".join(lines), "slide"))
        for k, fig in enumerate(nb_figures, start=1):
            if not fig.is_file():
                cells.append(_md(f"### {stem}: figure {k}\n\n_missing file `{fig.name}`_", "subslide"))
                continue
            cells.append(_md(f"### {stem}: figure {k}", "subslide"))
            code = nbformat.v4.new_code_cell("")
            code.outputs = [_png_output(fig.read_bytes())]
            code.metadata["transient"] = {"remove_source": True}
            _set_slide_type(code, "-")
            cells.append(code)

    overview = nbformat.v4.new_notebook(cells=cells)
    overview.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    overview.metadata["language_info"] = {"name": "python"}
    overview.metadata["title"] = f"cifarkit run {summary.get('run_name') or run_dir.name}"
    return overview


def _executed_notebooks(run_dir: Path, summary: Mapping[str, Any] | None) -> list[Path]:
    if summary and summary.get("notebooks"):
        paths = []
        for nb in summary["notebooks"]:
            executed = nb.get("executed")
            if executed:
                path = _inside(run_dir, executed, f"executed notebook of {nb['name']}")
                if path.is_file():
                    paths.append(path)
        return paths
    return sorted(_inside(run_dir, p.name, "executed notebook") for p in run_dir.glob("*.ipynb")
                  if not p.name.startswith("."))


def _read_notebook(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds; all mean "unreadable"
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValueError(f"{path}: not a readable notebook ({reason})") from None


def build_slides(run_dir: str | os.PathLike, out_dir: str | os.PathLike = "slides", *,
                 reveal_url_prefix: str | None = None,
                 exporter_options: Mapping[str, Any] | None = None) -> list[Path]:
    """Write reveal.js decks for a run into ``out_dir/<run name>/``.

    One ``<stem>.slides.html`` per executed notebook of ``run_dir`` (failed
    ones included: their deck ends at the traceback), then
    ``overview.slides.html`` built from ``summary.json`` and ``figures/``.
    Existing decks of the same name are replaced. Returns the written paths
    (notebook decks in run order, the overview last).

    ``reveal_url_prefix`` overrides where reveal.js is loaded from (default:
    nbconvert's CDN URL), e.g. ``"reveal.js"`` for a local copy next to the
    decks. ``exporter_options`` are further settings of nbconvert's
    ``SlidesExporter`` (`cifarkit.course.book` passes a template and a
    preprocessor that make decks which load nothing from the network).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"run directory {str(run_dir)!r} is a file, not a directory")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {str(run_dir)!r}")
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(
            f"{str(run_dir)!r} has no summary.json; is it a run directory made by "
            "`python -m cifarkit run`?"
        )
    summary = read_summary(summary_path)
    notebooks = [(path, _read_notebook(path)) for path in _executed_notebooks(run_dir, summary)]
    overview = overview_notebook(run_dir, summary)  # checks every figure path before writing

    dest = Path(out_dir) / run_dir.resolve().name
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"slides folder {str(dest)!r} exists and is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    exporter = _exporter(reveal_url_prefix, exporter_options)
    decks: list[tuple[Path, str]] = []
    for path, nb in notebooks:
        nb.metadata["cifarkit_title"] = path.stem
        nb.metadata["title"] = path.stem
        body, _ = exporter.from_notebook_node(prepare_for_slides(nb))
        stem = path.stem if path.stem != "overview" else "overview-notebook"
        decks.append((dest / f"{stem}.slides.html", body))
    body, _ = exporter.from_notebook_node(overview)
    decks.append((dest / "overview.slides.html", body))
    for target, body in decks:
        target.write_text(body, encoding="utf-8")
    return [target for target, _ in decks]
