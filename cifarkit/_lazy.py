"""Names a package exports, imported when first used.

A package lists its public names as plain ``from .module import Name`` statements inside
``if TYPE_CHECKING:``; editors and type checkers follow them. `lazy_exports` reads the same
statements from the package's source and returns the module-level ``__getattr__`` (PEP 562) that
imports each name on first use, so the list is written once.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any, Callable, Sequence


def exported_imports(source: str) -> dict[str, tuple[str, str | None]]:
    """``{name: (relative module, attribute or None)}`` of the ``from .x import y`` statements in the
    ``if TYPE_CHECKING:`` block of `source` (``from . import x`` gives ``(".x", None)``)."""
    found: dict[str, tuple[str, str | None]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.level == 1:
                    for alias in stmt.names:
                        if stmt.module is None:
                            found[alias.asname or alias.name] = ("." + alias.name, None)
                        else:
                            found[alias.asname or alias.name] = ("." + stmt.module, alias.name)
    return found


def lazy_exports(package: str, init_file: str, public: Sequence[str]) -> tuple[Callable[[str], Any],
                                                                             Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for `package`, whose ``__init__`` is `init_file`: a name of its
    ``TYPE_CHECKING`` imports is imported on first use, any other name is tried as a submodule
    (``ck.freezing``), and an unknown name is the usual AttributeError."""
    table = exported_imports(Path(init_file).read_text(encoding="utf-8"))
    missing = sorted(set(public) - set(table))
    if missing:  # a name in __all__ that no statement imports: the package's own mistake
        raise ImportError(f"{package}.__all__ names {missing}, which its TYPE_CHECKING imports do not")
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name in table:
            module, attribute = table[name]
            value = importlib.import_module(module, package)
            if attribute is not None:
                value = getattr(value, attribute)
        else:
            try:
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
