"""The package's two layers: the teaching library (`cifarkit/*.py`) and the course machinery
(`cifarkit/course/`). The library never imports the machinery; the code a student reads to follow
`Trainer.fit` stays short; every `ck.` name a notebook uses resolves, statically where it can.

``python tests/test_layers.py`` prints the Trainer's import closure, file by file.
"""
from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cifarkit"
NOTEBOOKS = PACKAGE.parent / "notebooks"
#: the most lines (whole files) a student may have to read to follow `Trainer.fit`
TRAINER_CLOSURE_LIMIT = 1400


def module_file(name: str, root: Path = PACKAGE.parent) -> Path | None:
    """The file of the cifarkit module `name` (``cifarkit.x.y``) under `root`, or None when it is no module."""
    parts = name.split(".")
    if parts[0] != "cifarkit":
        return None
    base = root.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """The cifarkit modules `path` (a file of the package under `root`) imports anywhere in it, at
    the top or inside a function."""
    name = ".".join(path.relative_to(root).with_suffix("").parts)
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
                found.add(sub if module_file(sub, root) else module)
    return {m for m in found if module_file(m, root) is not None}


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


MACHINERY = {"book", "claims", "cli", "engine", "notebook_params", "notebooks", "params", "profiles", "results",
             "runner", "slides", "summary", "sweep"}


def test_the_machinery_lives_in_the_course_subpackage():
    assert MACHINERY <= {p.stem for p in (PACKAGE / "course").glob("*.py")}
    assert not MACHINERY & {p.stem for p in library_modules()}, "a machinery module left in the library"
    assert not (PACKAGE / "course.py").exists()


def test_the_import_checker_sees_a_crossing_even_inside_a_function(tmp_path):
    (tmp_path / "cifarkit" / "course").mkdir(parents=True)
    (tmp_path / "cifarkit" / "course" / "claims.py").write_text("")
    (tmp_path / "cifarkit" / "timing.py").write_text("")
    library = tmp_path / "cifarkit" / "lib.py"
    library.write_text("from . import timing\n\ndef f():\n    from .course.claims import Claims\n")
    assert imported_modules(library, tmp_path) == {"cifarkit.course.claims", "cifarkit.timing"}


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
    """Every name is a plain ``from .module import Name`` under ``TYPE_CHECKING`` (what an editor
    follows), and the lazy `__getattr__` resolves it from those same statements."""
    from cifarkit._lazy import exported_imports

    import cifarkit as ck

    table = exported_imports((PACKAGE / "__init__.py").read_text())
    top_level = {name.split(".")[0] for name in notebook_ck_names()} - {"__file__"}
    submodules = {name for name in top_level if module_file(f"cifarkit.{name}")}  # ck.freezing, ck.recipes
    assert submodules <= {"freezing", "models", "recipes", "course", "claims"}
    assert top_level - submodules <= set(table), sorted(top_level - submodules - set(table))
    assert set(ck.__all__) <= set(table)
    for name, (module, attribute) in table.items():
        defined = importlib.import_module(module, "cifarkit")
        assert getattr(ck, name) is (defined if attribute is None else getattr(defined, attribute)), name
    with pytest.raises(AttributeError, match="has no attribute 'Trainr'"):
        ck.Trainr


def test_an_editor_goes_to_the_definition_of_the_student_names():
    """What "go to definition" does in an editor built on jedi (IPython's and JupyterLab's
    completion use it too): each name lands on its def or class in the module that defines it."""
    jedi = pytest.importorskip("jedi")
    names = {"Trainer": "training.py", "Animator": "plotting.py", "Timer": "timing.py", "evaluate": "training.py",
             "global_magnitude_prune": "pruning.py", "freeze_initial": "freezing.py", "setup": "notebooks.py",
             "Claims": "claims.py"}
    code = "import cifarkit as ck\n" + "".join(f"ck.{name}\n" for name in names)
    script = jedi.Script(code, path=str(PACKAGE.parent / "editor.py"), project=jedi.Project(str(PACKAGE.parent)))
    for line, (name, module) in enumerate(names.items(), start=2):
        found = script.goto(line, 4, follow_imports=True)
        assert [(d.module_path.name, d.name) for d in found] == [(module, name)], f"ck.{name}: {found}"
        assert found[0].description.startswith(("def ", "class ")), found[0].description


@pytest.mark.parametrize("module", ["cifarkit", "cifarkit.course.cli", "cifarkit.course.engine",
                                    "cifarkit.course.runner"])
def test_the_command_line_and_the_workers_import_no_torch(module):
    """``cifarkit --help``, a Dask worker and the runner start in a fraction of a second: importing
    them loads neither torch nor numpy (the notebooks' kernels do)."""
    code = f"import sys, {module}; print(sorted({{'torch', 'numpy', 'matplotlib'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import {module} loads {out.strip()}"


def test_an_export_without_its_import_statement_is_refused(tmp_path):
    from cifarkit._lazy import lazy_exports

    init = tmp_path / "__init__.py"
    init.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import b\n")
    with pytest.raises(ImportError, match=r"\['c'\], which its TYPE_CHECKING imports do not"):
        lazy_exports("cifarkit", str(init), ["b", "c"])


def test_each_helper_a_notebook_calls_names_the_notebook_that_introduces_it():
    import inspect

    import cifarkit as ck

    first: dict[str, str] = {}
    for name, notebooks in notebook_ck_names().items():
        first[name] = min(nb[:2] for nb in notebooks)
    unnamed = []
    for dotted, number in sorted(first.items()):
        obj = ck
        for part in dotted.split("."):
            obj = getattr(obj, part)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and dotted.split(".")[0] != "course" \
                and f"Notebook {number} introduces it" not in (obj.__doc__ or ""):
            unnamed.append(f"ck.{dotted} (first in notebook {number})")
    assert not unnamed, unnamed


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "cifarkit.training"
    found = closure(target)
    for name, n in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {name}")
    print(f"{sum(found.values()):6d}  total, {len(found)} modules")


#: what docstrings of the other styles look like: a numpy-style section underline, Sphinx roles and fields
FOREIGN_DOCSTRING = re.compile(r"^\s*(?:Parameters|Returns|Raises|Yields|Attributes|Examples|Notes|See Also)\s*\n\s*-{3,}\s*$"
                               r"|:(?:func|class|meth|data|mod|attr):`|^\s*:(?:param|returns?|rtype)\b", re.M)


def foreign_docstrings(root: Path) -> list[str]:
    """``file:line name`` of each docstring under `root` written in a style other than docs/CONTRACTS.md's."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc and FOREIGN_DOCSTRING.search(doc):
                    found.append(f"{path}:{getattr(node, 'lineno', 1)} {getattr(node, 'name', '<module>')}")
    return found


def test_docstrings_are_one_style(tmp_path):
    """Prose plus a Google ``Args:`` block (docs/CONTRACTS.md): no numpy sections, no Sphinx roles."""
    assert foreign_docstrings(PACKAGE) == []
    (tmp_path / "numpy_style.py").write_text('def f(x):\n    """Sum.\n\n    Parameters\n    ----------\n    x: a number\n    """\n')
    (tmp_path / "sphinx_style.py").write_text('"""See :func:`f`."""\n')
    assert len(foreign_docstrings(tmp_path)) == 2
