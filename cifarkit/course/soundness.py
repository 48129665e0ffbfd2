"""The soundness review: every prose paragraph of the notebooks, with the kind of sentence it is.

Every paragraph a notebook teaches is one of four kinds (issue 27, "every sentence holds"):

* ``computed``: what it says about this run is printed by a code cell of the run, with the number;
* ``claim``: what it says is a claim of the verdict table, judged on this run's numbers;
* ``recorded``: it summarises recorded runs, generated from the record between
  ``<!-- recorded: KEY -->`` markers (`cifarkit.course.recorded`), so it cannot drift from it;
* ``background``: a definition, the mathematics, how the code works, or a fact from a cited source.

The kinds are reviewed by hand in a table (``docs/soundness_review.py``: ``REVIEW = {key: (kind,
note)}``), keyed by `paragraph_key`: the notebook, the cell id and a hash of the paragraph's text
(with recorded spans reduced to their keys, so a record update does not unsettle the review). A
paragraph whose text changes gets a new key and shows as ``UNREVIEWED`` until someone reads it
again; a paragraph with a recorded marker is ``recorded``, and the prose around its spans is
reviewed like any other (its entry's note says what backs it). `render_markdown` writes
``docs/soundness.md`` from the notebooks and the table; the tests fail when that file is stale or
has an ``UNREVIEWED`` row.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .recorded import MARKER

__all__ = ["KINDS", "UNREVIEWED", "Paragraph", "paragraphs", "paragraph_key", "classify", "render_markdown",
           "unreviewed"]

KINDS = ("computed", "claim", "recorded", "background")
UNREVIEWED = "UNREVIEWED"
_HEADING_ONLY = re.compile(r"^#{1,6} [^\n]*$")
_BADGE = re.compile(r"^\[!\[Open In Colab\]")


@dataclass(frozen=True)
class Paragraph:
    """One prose paragraph: its notebook (file name), cell id, index within the cell and text."""

    notebook: str
    cell: str
    index: int
    text: str

    @property
    def key(self) -> str:
        """Its key in the review table (see `paragraph_key`)."""
        return paragraph_key(self.notebook, self.cell, self.text)

    @property
    def recorded(self) -> bool:
        """True when it holds a recorded span (`cifarkit.course.recorded`)."""
        return bool(MARKER.search(self.text))

    @property
    def first_words(self) -> str:
        """Its first words, for a reader of the review."""
        plain = MARKER.sub(lambda m: f"[recorded: {m.group('key').strip()}]", self.text)
        words = " ".join(plain.split()).split(" ")
        return " ".join(words[:10]) + (" ..." if len(words) > 10 else "")


def paragraph_key(notebook: str, cell: str, text: str) -> str:
    """``"NN cell-id hash"``: the notebook's number, the cell id and the first 8 hex digits of the
    SHA-1 of the paragraph's whitespace-normalised text, recorded spans reduced to their keys."""
    stable = MARKER.sub(lambda m: f"<recorded {m.group('key').strip()}>", text)
    digest = hashlib.sha1(" ".join(stable.split()).encode()).hexdigest()[:8]
    return f"{notebook[:2]} {cell} {digest}"


def paragraphs(path: str | Path) -> list[Paragraph]:
    """The prose paragraphs of the notebook `path`: its markdown cells split on blank lines (a block
    of a recorded span stays with its paragraph), without lines that are only a heading, without the
    Colab badge."""
    path = Path(path)
    nb = json.loads(path.read_text())
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        # blank lines inside a recorded span (a table block) do not split it
        protected = MARKER.sub(lambda m: m.group(0).replace("\n\n", "\n\0\n"), source)
        index = 0
        for block in re.split(r"\n\s*\n", protected):
            block = block.replace("\n\0\n", "\n\n").strip()
            lines = [line for line in block.splitlines() if not _HEADING_ONLY.match(line.strip())]
            text = "\n".join(lines).strip()
            if not text or _BADGE.match(text):
                continue
            out.append(Paragraph(path.name, cell.get("id", str(i)), index, text))
            index += 1
    return out


def classify(paragraph: Paragraph, review: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """``(kind, note)`` of `paragraph`: `UNREVIEWED` without an entry in `review`; ``recorded``
    (with the entry's note on the prose around the spans) when it holds a recorded span; else its
    entry. A review entry with a kind outside `KINDS` is a ValueError."""
    if paragraph.key not in review:  # also with a recorded span: the prose around it is read too
        return UNREVIEWED, ""
    if paragraph.recorded:
        keys = ", ".join(m.group("key").strip() for m in MARKER.finditer(paragraph.text))
        note = review[paragraph.key][1]
        return "recorded", f"generated: {keys}" + (f"; the rest: {note}" if note else "")
    kind, note = review[paragraph.key]
    if kind not in KINDS:
        raise ValueError(f"soundness review: {paragraph.key!r} has kind {kind!r}, not one of {', '.join(KINDS)}")
    return kind, note


def unreviewed(paths: Iterable[str | Path], review: Mapping[str, tuple[str, str]]) -> list[Paragraph]:
    """The paragraphs of the notebooks `paths` that the review has not classified."""
    return [p for path in paths for p in paragraphs(path) if classify(p, review)[0] == UNREVIEWED]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(paths: Iterable[str | Path], review: Mapping[str, tuple[str, str]],
                    checked_against: str = "") -> str:
    """``docs/soundness.md``: the kinds, a count per notebook and kind, one row per paragraph, and
    `checked_against` (which executed runs the review was read against)."""
    paths = [Path(p) for p in paths]
    rows, counts = [], {}
    for path in paths:
        for p in paragraphs(path):
            kind, note = classify(p, review)
            counts.setdefault(path.name, {}).setdefault(kind, 0)
            counts[path.name][kind] += 1
            rows.append(f"| {path.name[:2]} | {p.cell} | {p.index + 1} | {_cell(p.first_words)} | **{kind}** "
                        f"| {_cell(note)} | `{p.key.split()[-1]}` |")
    kinds = (*KINDS, UNREVIEWED)
    lines = [
        "# Soundness review of the notebooks",
        "",
        "Generated by `python docs/soundness_review.py` from the notebooks and the hand-kept table in",
        "`docs/soundness_review.py` (do not edit this file by hand; `tests/test_soundness.py` fails when it",
        "is stale or has an UNREVIEWED row). One row per prose paragraph (markdown cells split on blank",
        "lines; headings and the Colab badge left out), with its kind:",
        "",
        "* **computed**: what it says about this run is printed by a code cell of the run (the note names it);",
        "* **claim**: what it says is a claim of the verdict table (the note names it);",
        "* **recorded**: generated from a record the kit ships (`cifarkit.course.recorded` markers; the note names the keys);",
        "* **background**: a definition, the mathematics, how the code works, or a fact from a cited source.",
        "",
        "A paragraph whose text changes gets a new hash and is UNREVIEWED until it is read again.",
        "",
        "## Checked against",
        "",
        checked_against.strip() or "(not yet recorded)",
        "",
        "## Count per notebook",
        "",
        "| notebook | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for name, by_kind in counts.items():
        lines.append(f"| {name} | " + " | ".join(str(by_kind.get(k, 0)) for k in kinds) + " |")
    lines += ["", "## Paragraphs", "", "| nb | cell | # | first words | kind | note | hash |",
              "|---|---|---:|---|---|---|---|", *rows, ""]
    return "\n".join(lines)
