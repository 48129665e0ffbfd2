"""The package's two layers: the teaching library (`cifarkit/*.py`) and the course machinery
(`cifarkit/course/`). The library never imports the machinery; the code a student reads to follow
`Trainer.fit` stays short; every `ck.` name a notebook uses resolves, statically where it can.

``python tests/test_layers.py`` prints the Trainer's import closure, file by file.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cifarkit"
NOTEBOOKS = PACKAGE.parent / "notebooks"
#: the most lines (whole files) a student may have to read to follow `Trainer.fit`
TRAINER_CLOSURE_LIMIT = 1400


def module_file(name: str) -> Path | None:
    """The file of the cifarkit module `name` (``cifarkit.x.y``), or None when it is no module."""
    parts = name.split(".")
    if parts[0] != "cifarkit":
        return None
    base = PACKAGE.parent.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """The cifarkit modules `path` imports anywhere in it (at the top or inside a function)."""
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cifarkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "cifarkit":
                continue
            for alias in node.names:  # `from . import x` imports the module x
                sub = f"{module}.{alias.name}"
                found.add(sub if module_file(sub) else module)
    return {m for m in found if module_file(m) is not None}


def closure(module: str) -> dict[str, int]:
    """Every cifarkit module `module` imports, transitively (itself included; the package's own
    `__init__` files left out, as a reader of the code follows the imports, not the package),
    with its length in lines."""
    seen, todo = {}, [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None or path.name == "__init__.py":
            continue
        seen[name] = len(path.read_text().splitlines())
        todo += sorted(imported_modules(path))
    return seen


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def test_the_library_never_imports_the_course_machinery():
    crossing = {p.name: sorted(m for m in imported_modules(p) if m.startswith("cifarkit.course"))
                for p in library_modules()}
    assert library_modules() and not {k: v for k, v in crossing.items() if v}


def test_the_machinery_lives_in_the_course_subpackage():
    course = {p.stem for p in (PACKAGE / "course").glob("*.py")}
    assert {"claims", "cli", "runner", "summary", "slides", "params", "profiles", "results"} <= course
    assert not course & {p.stem for p in library_modules()}, "a module in both layers"


def test_the_import_checker_sees_a_crossing(tmp_path):
    bad = tmp_path / "cifarkit_fake.py"
    bad.write_text("def f():\n    from .course.claims import Claims\n")
    # relative to a file at the top of the package, as the library modules are
    fake = PACKAGE / "_layers_probe.py"
    try:
        fake.write_text(bad.read_text())
        assert "cifarkit.course.claims" in imported_modules(fake)
    finally:
        fake.unlink()


def test_following_trainer_fit_means_reading_at_most_1400_lines():
    lines = closure("cifarkit.training")
    assert "cifarkit.resume" in lines and "cifarkit.freezing" not in lines and "cifarkit.pruning" not in lines
    assert sum(lines.values()) <= TRAINER_CLOSURE_LIMIT, lines


def notebook_ck_names() -> dict[str, set[str]]:
    """``ck.name`` and ``ck.module.name`` as the notebooks' code cells use them -> the notebooks."""
    names: dict[str, set[str]] = {}
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                for name in re.findall(r"\bck\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)", "".join(cell["source"])):
                    names.setdefault(name, set()).add(nb.stem)
    return names


def test_every_ck_name_the_notebooks_use_resolves():
    import cifarkit as ck

    names = notebook_ck_names()
    assert {"Trainer", "setup", "Claims", "record_results", "load_data"} <= set(names)
    missing = []
    for dotted in names:
        obj = ck
        for part in dotted.split("."):
            if not hasattr(obj, part):
                missing.append(f"ck.{dotted} ({', '.join(sorted(names[dotted]))})")
                break
            obj = getattr(obj, part)
    assert not missing, missing


def test_the_student_names_are_plain_imports_an_editor_can_follow():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    imported = {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert not any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
    top_level = {name.split(".")[0] for name in notebook_ck_names()} - {"__file__"}
    assert top_level <= imported, sorted(top_level - imported)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "cifarkit.training"
    found = closure(target)
    for name, n in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {name}")
    print(f"{sum(found.values()):6d}  total, {len(found)} modules")
