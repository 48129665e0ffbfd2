"""Recorded sentences: prose about recorded runs, generated from the record so it cannot drift.

A notebook's markdown may summarise runs the kit has recorded (the quick-profile lessons sweep
``bench/lessons_quick.json``, the speedrun record ``bench/speedrun_record.json``). Such a sentence
is not typed: it sits between markers, and the text between them is what `render` makes of its key::

    <!-- recorded: runtime 01 -->Its quick profile took 230 s on a 2-core ...<!-- /recorded -->

Keys (``NN`` is a notebook's two-digit number, ``CLAIM`` a claim name of that notebook):

* ``runtime NN``: what the notebook's quick profile took on each CPU that timed the quick suite
  (``bench/cpu_modes.json``, `python bench/cpu_modes.py suite`), with the whole suite's minutes;
* ``sweep NN CLAIM``: how often the claim reached each verdict over the sweep's runs;
* ``values NN CLAIM``: the range of the claim's measured value over the runs where it was tested
  (read from the recorded evidence: the difference of a comparison, else the estimate's value);
* ``notebook NN``: how often the notebook's claims reached each verdict, all runs together;

``sweep`` and ``values`` take an optional last word, ``synthetic`` or ``copy``, to keep only the
runs on that data source.
* ``speedrun ablation`` / ``speedrun timing``: the recorded tables of ``bench/speedrun_record.json``;
* ``speedrun cell TABLE ROW COLUMN``: one cell of such a table (ROW: the first cell's text, e.g.
  ``no-tta``; COLUMN: its number, 1 for the first);
* ``accuracy KEY FIELD``: one field of a recorded full run in ``bench/accuracy_results.json``
  (``test_acc``, ``exact_first_1000_acc`` ... as a percentage, ``train_minutes`` in minutes).

`update_notebooks` rewrites every marked span from the records (``python -m cifarkit.course.recorded``),
`stale_spans` lists the spans whose text differs from what the records render (``--check``;
the test suite runs it), so a record that changes fails the tests until the notebooks follow it.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["MARKER", "Records", "render", "spans", "update_text", "stale_spans", "update_notebooks",
           "claim_value", "main"]

#: A recorded span in markdown: its key and its generated text.
MARKER = re.compile(r"<!-- recorded: (?P<key>[^>]*?) -->(?P<text>.*?)<!-- /recorded -->", re.S)
LESSONS = "bench/lessons_quick.json"
SPEEDRUN = "bench/speedrun_record.json"
ACCURACY = "bench/accuracy_results.json"
CPU_MODES = "bench/cpu_modes.json"


def find_root(start: Path | None = None) -> Path:
    """The repository folder that holds ``bench/`` (searched upward from this file or `start`)."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        if (folder / LESSONS).is_file():  # noqa: SIM102
            return folder
    raise FileNotFoundError(f"no {LESSONS} above {here}: recorded sentences need the repository's bench/ folder")


class Records:
    """The records a recorded sentence may cite, read from `root` (the repository) on first use;
    or given directly: ``Records(lessons={...}, speedrun={...}, accuracy={...})`` (for tests)."""

    def __init__(self, root: str | Path | None = None, lessons: Mapping | None = None,
                 speedrun: Mapping | None = None, accuracy: Mapping | None = None,
                 cpu_modes: Mapping | None = None):
        self._root = Path(root) if root is not None else None
        self._data = {LESSONS: lessons, SPEEDRUN: speedrun, ACCURACY: accuracy, CPU_MODES: cpu_modes}

    def get(self, name: str) -> Mapping[str, Any]:
        """The record file `name` (``LESSONS``, ``SPEEDRUN``, ``ACCURACY`` or ``CPU_MODES``) as parsed JSON."""
        if self._data.get(name) is None:
            path = (self._root or find_root()) / name
            try:
                self._data[name] = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"recorded sentences: cannot read {path}: {err}") from None
        return self._data[name]


def _notebook_runs(lessons: Mapping, nn: str) -> list[tuple[str, Mapping]]:
    """``(run label, that run's entry for notebook NN)`` over the sweep's runs."""
    out = []
    for label, run in lessons.get("runs", {}).items():
        entry = next((v for k, v in run.items() if k.startswith(f"{nn}_")), None)
        if entry is not None:
            out.append((label, entry))
    if not out:
        raise KeyError(f"recorded: notebook {nn!r} has no run in {LESSONS}")
    return out


SOURCES = {"synthetic": "synthetic", "copy": "CIFAR-10 copy"}


def _claims(lessons: Mapping, nn: str, claim: str | None, source: str | None = None) -> list[tuple[str, Mapping]]:
    """``(run label, recorded claim dict)`` for claim `claim` (None: every claim) of notebook NN over
    the sweep's runs (only those on data `source`, ``"synthetic"`` or ``"copy"``, when given)."""
    if source is not None and source not in SOURCES:
        raise ValueError(f"recorded: data source {source!r} is not one of {', '.join(SOURCES)}")
    found = [(label, c) for label, entry in _notebook_runs(lessons, nn)
             if source is None or label.startswith(SOURCES[source] + " seed")
             for c in entry.get("claims") or [] if claim is None or c.get("name") == claim]
    if not found:
        raise KeyError(f"recorded: notebook {nn} has no claim {claim!r} in {LESSONS}")
    return found


def _seed_list(seeds: list[int]) -> str:
    """``0-4`` for a consecutive run of seeds, else ``0, 2, 5``."""
    seeds = sorted(set(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _sweep_source(lessons: Mapping, labels: list[str]) -> str:
    """Where the sentence's numbers come from: the record, its runs by data source and seed (from
    their labels, ``"synthetic seed 0"``), the machine and the date."""
    seeds: dict[str, list[int]] = {}
    for label in labels:
        source, _, seed = label.rpartition(" seed ")
        seeds.setdefault(source, []).append(int(seed))
    runs = "; ".join(f"{source} seed{'s' if len(set(s)) > 1 else ''} {_seed_list(s)}"
                     for source, s in seeds.items())
    return (f"`{LESSONS}`, {len(labels)} run{'s' if len(labels) != 1 else ''}: {runs}; {lessons.get('machine', '?')}, "
            f"{str(lessons.get('measured', '?'))[:10]}")


#: the units that give a CPU native bf16 (the words `bench/cpu_modes.py` writes into a CPU's name)
NATIVE_BF16 = ("AMX-bf16", "AVX512-BF16")


def _runtime(cpu_modes: Mapping, nn: str) -> str:
    """Notebook NN's seconds in the quick suite on every CPU that timed it, per mode, and what is
    still unmeasured: a CPU with native bf16 when none has timed this version."""
    timed, bf16 = [], False
    for cpu, rec in sorted(cpu_modes.get("suite_by_cpu", {}).items()):
        native_bf16 = any(unit in cpu for unit in NATIVE_BF16)
        bf16 |= native_bf16
        for mode in ("native", "avx2"):
            runs = [r for r in rec.get("runs", {}).get(f"current {mode}", []) if nn in r.get("notebooks", {})]
            if not runs:
                continue
            secs = sum(r["notebooks"][nn]["seconds"] for r in runs) / len(runs)
            total = sum(r["wall_s"] for r in rec["runs"][f"current {mode}"]) / len(rec["runs"][f"current {mode}"])
            how = ("in AVX2 mode" if mode == "avx2" else "with native bf16") if native_bf16 else "(AVX2 only)"
            timed.append(f"{secs:.0f} s on a 2-core {cpu} {how}, where the whole quick suite took "
                         f"{total / 60:.1f} min ({str(rec.get('measured', '?'))[:10]})")
    if not timed:
        raise KeyError(f"recorded: notebook {nn!r} has no timed quick suite in {CPU_MODES}")
    text = f"Its quick profile took {'; '.join(timed)} (`{CPU_MODES}`)."
    if not bf16:
        text += (" No CPU with native bf16 has timed this version yet; there the kit trains in bf16 "
                 "autocast (bench/results.md section 3 records what that gains).")
    return text


def _tally(found) -> str:
    counts: dict[str, int] = {}
    for _, c in found:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return ", ".join(f"*{v}* {n}" for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def claim_value(evidence: str) -> tuple[str, float, bool]:
    """``(what, value, percent)`` read from a recorded claim's evidence text: the difference of a
    comparison (``"difference"``, in points) or the value of a single estimate (its label)."""
    m = re.search(rf"difference ({_NUMBER})( points)?", evidence)
    if m:
        return "the difference", float(m.group(1)), bool(m.group(2))
    head = evidence.split("; claimed")[0]
    head = re.sub(r"\s*\[[^\]]*\]", "", head)           # the interval
    head = re.sub(r"\s*\(\d+ [^)]*\)\s*$", "", head)    # "(3 seeds, sd ...)"
    m = re.match(rf"^(?P<label>.*?)\s*(?P<num>{_NUMBER})(?P<pct>%?)$", head.strip())
    if not m:
        raise ValueError(f"recorded: no value in the evidence {evidence!r}")
    return m.group("label").strip() or "the value", float(m.group("num")), bool(m.group("pct"))


def _fmt(value: float, percent: bool) -> str:
    return f"{value:.1f}%" if percent else f"{value:.3g}"


def render(key: str, records: Records) -> str:
    """The text of the recorded span `key` (see the module docstring for the keys)."""
    words = key.split()
    kind = words[0] if words else ""
    if kind == "runtime" and len(words) == 2:
        return _runtime(records.get(CPU_MODES), words[1])
    if kind == "notebook" and len(words) == 2:
        lessons = records.get(LESSONS)
        found = _claims(lessons, words[1], None)
        runs = [label for label, _ in _notebook_runs(lessons, words[1])]
        return (f"In the recorded quick sweep ({_sweep_source(lessons, runs)}) the {len(found)} verdicts of "
                f"this notebook's claims were: {_tally(found)}.")
    if kind == "sweep" and len(words) in (3, 4):
        lessons = records.get(LESSONS)
        source = words[3] if len(words) == 4 else None
        found = _claims(lessons, words[1], words[2], source)
        where = _sweep_source(lessons, [label for label, _ in found])
        return (f"In the recorded quick sweep ({where}) this claim's "
                f"verdicts were: {_tally(found)}.")
    if kind == "values" and len(words) in (3, 4):
        lessons = records.get(LESSONS)
        source = words[3] if len(words) == 4 else None
        tested = [(label, c) for label, c in _claims(lessons, words[1], words[2], source)
                  if c.get("verdict") != "not testable here"]
        if not tested:
            raise ValueError(f"recorded: claim {words[2]!r} of notebook {words[1]} was tested in no recorded run")
        values = [claim_value(c.get("evidence") or "") for _, c in tested]
        what, percent = values[0][0], values[0][2]
        nums = [v for _, v, _ in values]
        unit = " points" if what == "the difference" and percent else ""
        lo, hi = (_fmt(min(nums), percent and not unit), _fmt(max(nums), percent and not unit))
        spread = f"was {lo}{unit} in every run" if lo == hi else f"ranged from {lo} to {hi}{unit}"
        what = what if what == "the difference" else f"the measured \u201c{what}\u201d"
        where = _sweep_source(lessons, [label for label, _ in tested])
        return f"In the recorded quick sweep ({where}) {what} {spread}."
    if kind == "speedrun" and len(words) == 5 and words[1] == "cell":
        table = _speedrun_table(records, words[2])
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table if line.startswith("|")]
        row = next((r for r in rows if r[0] == words[3]), None)
        if row is None:
            raise KeyError(f"recorded: the {words[2]} table of {SPEEDRUN} has no row {words[3]!r}")
        column = int(words[4]) if words[4].isdigit() else 0
        if not 1 <= column <= len(row):
            raise ValueError(f"recorded: column {words[4]!r} of key {key!r} must be 1 to {len(row)}")
        return row[column - 1]
    if kind == "accuracy" and len(words) == 3:
        runs = records.get(ACCURACY)
        if words[1] not in runs:
            raise KeyError(f"recorded: {ACCURACY} has no run {words[1]!r}")
        value = runs[words[1]].get(words[2])
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"recorded: {ACCURACY} run {words[1]!r} has no number {words[2]!r}")
        if words[2].endswith("_acc") or words[2].endswith("_acc_tta"):
            return f"{100 * value:.1f}%"
        return f"{value:.0f}" if words[2].endswith("minutes") else f"{value:g}"
    if kind == "speedrun" and len(words) == 2:
        return "\n" + "\n".join(_speedrun_table(records, words[1])).strip("\n") + "\n"
    raise ValueError(f"recorded: unknown key {key!r}; keys are 'runtime NN', 'sweep NN CLAIM [synthetic|copy]', "
                     "'values NN CLAIM [synthetic|copy]', 'notebook NN', 'speedrun ablation|timing', "
                     "'speedrun cell TABLE ROW COLUMN', 'accuracy KEY FIELD'")


def _speedrun_table(records: Records, name: str) -> list[str]:
    record = records.get(SPEEDRUN)
    if name not in record:
        raise KeyError(f"recorded: {SPEEDRUN} has no {name!r} (it has {', '.join(record)})")
    return list(record[name]["table"])


def spans(text: str) -> list[tuple[str, str]]:
    """``(key, text)`` of every recorded span in `text`."""
    return [(m.group("key").strip(), m.group("text")) for m in MARKER.finditer(text)]


#: An inline span that starts a line: Markdown would take the line for a raw HTML block (and show
#: its text without Markdown formatting), so `update_text` joins it to the line before.
_INLINE_AT_LINE_START = re.compile(r"\n(<!-- recorded: [^>]*? -->)(?!\n)")


def update_text(text: str, records: Records) -> str:
    """`text` with every recorded span's text replaced by what its key renders (an inline span is
    kept off the start of a line; a span whose text starts with a newline is a block, e.g. a table)."""
    text = MARKER.sub(lambda m: f"<!-- recorded: {m.group('key').strip()} -->"
                                f"{render(m.group('key').strip(), records)}<!-- /recorded -->", text)
    return _INLINE_AT_LINE_START.sub(r" \1", text)


def _markdown_cells(nb: Mapping) -> Iterable[tuple[int, Mapping, str]]:
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            yield i, cell, "".join(source) if isinstance(source, list) else source


def stale_spans(paths: Iterable[str | Path], records: Records | None = None) -> list[str]:
    """One line per recorded span of the notebooks `paths` whose text differs from its rendering."""
    records = records or Records()
    out = []
    for path in paths:
        nb = json.loads(Path(path).read_text())
        for i, cell, text in _markdown_cells(nb):
            for key, have in spans(text):
                want = render(key, records)
                if have != want:
                    out.append(f"{Path(path).name}, cell {cell.get('id', i)}, '{key}': the text says "
                               f"{have.strip()[:120]!r} but the record renders {want.strip()[:120]!r}")
    return out


def update_notebooks(paths: Iterable[str | Path], records: Records | None = None) -> list[Path]:
    """Rewrite the recorded spans of the notebooks `paths` from the records (the rest of each file
    is left byte for byte as it was); return the notebooks that changed."""
    records = records or Records()
    changed = []
    for path in map(Path, paths):
        raw = path.read_text()
        nb = json.loads(raw)
        dirty = False
        for _, cell, text in _markdown_cells(nb):
            new = update_text(text, records)
            if new != text:
                cell["source"] = new.splitlines(keepends=True)
                dirty = True
        if dirty:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m cifarkit.course.recorded [--check] [NOTEBOOK ...]``: update (or check) the recorded
    sentences of the notebooks (default: ``notebooks/*.ipynb`` of the repository)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"] or sorted((find_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if check:
        stale = stale_spans(paths)
        print("\n".join(stale) or f"every recorded sentence of {len(paths)} notebooks matches its record")
        return 1 if stale else 0
    changed = update_notebooks(paths)
    print("updated: " + (", ".join(p.name for p in changed) or "nothing (all up to date)"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
