"""Every claim a notebook can report as "not testable here" says what to expect where it is testable.

The notebooks' claim-defining code is read statically: each call of ``claims.greater / above /
below`` with a ``needs=`` argument, and each ``claims.not_testable(...)``, must pass ``elsewhere=``
with a text that names its source (`cifarkit.claims.ELSEWHERE_SOURCE`). `Claims` enforces the same
at run time; this test catches a notebook before anyone runs it.
"""
import ast
from pathlib import Path

import nbformat
import pytest

from cifarkit.course.claims import ELSEWHERE_SOURCE

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CLAIM_METHODS = {"greater", "above", "below", "not_testable"}


def code_of(path: Path) -> str:
    """The notebook's code cells as one Python source (IPython magics and shell lines dropped)."""
    nb = nbformat.read(path, as_version=4)
    def plain(line):  # a magic or shell line becomes `pass`, at its indentation
        stripped = line.lstrip()
        return line[:len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line
    cells = ["\n".join(plain(line) for line in c.source.splitlines()) for c in nb.cells if c.cell_type == "code"]
    return "\n\n".join(cells)


def text_of(node: ast.AST, source: str) -> str:
    """The literal text an `elsewhere=` expression holds, as far as it is written out: string
    constants and f-string parts joined (the formatted fields count as blanks)."""
    parts = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts.append(sub.value)
    return "".join(parts) or (ast.get_source_segment(source, node) or "")


def untestable_claims(source: str) -> list[tuple[str, int, str | None]]:
    """``(claim name or "?", line, elsewhere text or None)`` for every claim call in `source`
    that can come out "not testable here"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLAIM_METHODS):
            continue
        kwargs = {k.arg: k.value for k in node.keywords}
        if node.func.attr != "not_testable" and "needs" not in kwargs:
            continue
        name = node.args[0] if node.args else kwargs.get("name")
        name = ast.get_source_segment(source, name) if name is not None else "?"
        elsewhere = kwargs.get("elsewhere")
        if elsewhere is None and node.func.attr == "not_testable" and len(node.args) >= 4:
            elsewhere = node.args[3]
        found.append((name, node.lineno, None if elsewhere is None else text_of(elsewhere, source)))
    return found


def missing_expectations(source: str) -> list[str]:
    """The claims of `source` that can be untestable but carry no sourced expectation."""
    return [f"{name} (line {line})" for name, line, text in untestable_claims(source)
            if text is None or ELSEWHERE_SOURCE not in text]


def test_the_scan_finds_a_claim_without_an_expectation():
    bad = ('claims.greater("t", "s", a, b, needs=(case.imagenet, "needs ImageNet"))\n'
           'claims.not_testable("u", "s", "needs CIFAR-10")\n'
           'claims.above("v", "s", a, 0.1, needs=(x, "r"), elsewhere="84% with ImageNet")\n'
           'claims.above("w", "s", a, 0.1)\n'
           'claims.below("ok", "s", a, 0.1, needs=(x, "r"), elsewhere=f"{n} ends near 84% (source: the seed)")\n')
    assert missing_expectations(bad) == ['"t" (line 1)', '"u" (line 2)', '"v" (line 3)']


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_untestable_claim_says_what_to_expect(path):
    source = code_of(path)
    missing = missing_expectations(source)
    assert not missing, (f"{path.name}: claims that can be 'not testable here' without elsewhere='... "
                         f"{ELSEWHERE_SOURCE} ...)': {', '.join(missing)}")


def test_the_notebooks_have_untestable_claims_to_check():
    assert len(NOTEBOOKS) == 7
    assert sum(len(untestable_claims(code_of(p))) for p in NOTEBOOKS) >= 10
