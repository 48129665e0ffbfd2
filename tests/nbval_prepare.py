"""Build the copies of the notebooks that nbval validates, or refresh their expected outputs.

Committed notebooks carry no outputs, and nbval only compares cells that have a stored output, so
the expected output of each deterministic cell (first line `# NBVAL_CHECK_OUTPUT`) is kept in
tests/nbval_expected.json and injected into a copy:

    python tests/nbval_prepare.py build/nbval              # copies for `pytest --nbval-lax build/nbval`
    python tests/nbval_prepare.py --update runs/<run>      # take expected outputs from an executed run

A marked cell without an expected output is an error, so a new check cannot be skipped silently.

The copies are parameterised by papermill exactly as `python -m cifarkit run` does it (an
``injected-parameters`` cell after the ``parameters`` cell, here ``profile = "quick"``), so the
single execution in CI goes through the same parameter path as a papermill run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
EXPECTED = REPO / "tests" / "nbval_expected.json"
MARKER = "# NBVAL_CHECK_OUTPUT"


def checked_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(MARKER)]


def _plain(outputs):
    """Keep what nbval compares and a reviewer can read: text streams and text/plain results."""
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            kept.append({"output_type": "stream", "name": "stdout", "text": "".join(out["text"])})
        elif out.get("output_type") in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            data = {"text/plain": "".join(out["data"]["text/plain"])}
            kept.append({"output_type": out["output_type"], "data": data, "metadata": {},
                         **({"execution_count": 1} if out["output_type"] == "execute_result" else {})})
    return kept


def prepare(out_dir: Path, parameters: dict | None = None) -> list[Path]:
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = load_notebook_node(str(path))  # papermill's reader: adds the metadata it expects
        for cell in checked_cells(nb):
            try:
                outputs = expected[path.stem][cell.id]
            except KeyError:
                sys.exit(f"{path.name}: cell {cell.id!r} is marked {MARKER} but has no expected output in "
                         f"{EXPECTED.relative_to(REPO)}; run with --update RUN_DIR")
            cell.outputs = [nbformat.from_dict(o) for o in outputs]
            cell.execution_count = 1
        nb = parameterize_notebook(nb, parameters or {"profile": "quick"}, kernel_name="python3",
                                   language="python")
        target = out_dir / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


def update(run_dir: Path) -> dict:
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        executed = run_dir / path.name
        if not executed.exists():
            continue
        nb = nbformat.read(executed, as_version=4)
        cells = {c.id: _plain(c.outputs) for c in checked_cells(nb)}
        if cells:
            expected[path.stem] = cells
        else:
            expected.pop(path.stem, None)
    EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return expected


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="output folder for the copies, or the run folder with --update")
    parser.add_argument("--update", action="store_true")
    args = parser.parse_args()
    if args.update:
        print(f"expected outputs for: {', '.join(update(Path(args.target))) or 'none'}")
    else:
        print(f"{len(prepare(Path(args.target)))} notebooks prepared in {args.target}")
