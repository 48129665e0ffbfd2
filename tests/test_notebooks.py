"""Notebook hygiene: what every committed notebook must look like (executing them is nbval's job,
in `make test`, over the copies built by tests/nbval_prepare.py)."""
import ast
import importlib
import pkgutil
import re
import sys
import types

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

import cifarkit
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ids = [p.stem for p in NOTEBOOKS]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def python_source(cell) -> str:
    """Cell source with IPython syntax (%pip, !cmd) turned into plain Python."""
    return TransformerManager().transform_cell(cell.source)


def kit_names() -> set:
    names = set(cifarkit.__all__)
    modules = [f"{package.__name__}.{info.name}" for package in (cifarkit, cifarkit.course)
               for info in pkgutil.iter_modules(package.__path__) if not info.ispkg and info.name != "__main__"]
    for module in modules:
        mod = importlib.import_module(module)
        names |= {n for n, v in vars(mod).items() if not n.startswith("_") and callable(v)
                  and getattr(v, "__module__", "").startswith("cifarkit")}
    return names


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_outputs_are_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert not cell.outputs and cell.execution_count is None, f"{path.name}: cell {cell.id} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_one_parameters_cell_first_with_plain_literals(path):
    cells = code_cells(nbformat.read(path, as_version=4))
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0] is cells[0], "the parameters cell must be the first code cell"
    assert tagged[0].source.startswith("# parameters"), "Colab cannot show tags: start with '# parameters'"
    tree = ast.parse(tagged[0].source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        ast.literal_eval(node.value)  # plain literals only: papermill injects after this cell
        names.add(node.targets[0].id)
    assert "profile" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_each_notebook_has_its_two_profiles_in_the_course_module(path):
    profiles = cifarkit.notebook_profiles(path.stem)
    assert set(profiles) == {"quick", "full"}
    assert profiles["quick"].keys() == profiles["full"].keys(), "both profiles set the same things"
    assert profiles["full"]["n_train"] is None  # the full profile trains on every image


def test_every_profile_belongs_to_a_notebook_and_an_unknown_notebook_is_named():
    assert set(cifarkit.course.notebooks.PROFILES) == set(ids), "a profile without its notebook, or the reverse"
    with pytest.raises(ValueError, match="unknown notebook '99_x'.*adding-a-notebook"):
        cifarkit.notebook_profiles("99_x")


def test_notebook_01s_recipe_is_the_one_notebooks_03_and_04_fall_back_on():
    for profile in ("quick", "full"):
        recipe = cifarkit.course.notebooks.FINETUNE[profile]
        first = cifarkit.notebook_profiles("01_softmax_vs_logits")[profile]
        assert {k: first[k] for k in recipe} == recipe, "notebook 01 trains with FINETUNE"
        for later in ("03_pruning", "04_unpruning"):
            assert cifarkit.notebook_profiles(later)[profile]["finetune"] == recipe


def test_setup_names_the_notebook_and_copies_the_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CIFARKIT_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("CIFARKIT_PROFILE", raising=False)
    cfg = cifarkit.setup("03_pruning", "quick", epochs=1, data="synthetic")
    assert cfg.notebook == "03_pruning" and cfg.epochs == 1 and cfg.name == "quick"
    assert "(profile 'full': " in capsys.readouterr().out, "the other profile is printed too"
    cfg.finetune["epochs"] = 99  # a notebook changing its settings changes nobody else's
    assert cifarkit.course.notebooks.FINETUNE["quick"]["epochs"] == 3
    assert cifarkit.artifact(cfg, "m") == tmp_path / "artifacts" / "m_quick.pt"
    monkeypatch.delenv("CIFARKIT_NOTEBOOK", raising=False)
    path = cifarkit.record_results({"acc": 0.5}, cfg)
    assert path == tmp_path / "03_pruning.metrics.json"
    monkeypatch.setenv("CIFARKIT_NOTEBOOK", "03_pruning_mine")  # the runner executes a renamed copy
    assert cifarkit.record_results({"acc": 0.5}, cfg) == tmp_path / "03_pruning_mine.metrics.json"
    assert cifarkit.record_results("named", {"acc": 0.5}) == tmp_path / "named.metrics.json"
    with pytest.raises(ValueError, match=r"ck.setup\(notebook"):
        cifarkit.record_results({"acc": 0.5}, cifarkit.resolve_profile("quick", {"quick": {}}, verbose=False))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_setup_resolves_a_profile_and_results_and_invariants_close(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    assert re.search(r"ck\.setup\(\"" + path.stem + r"\", profile", cells[2].source), "third code cell: the setup cell"
    assert "record_results(" in cells[-2].source, "second-to-last code cell: the results cell"
    assert re.search(r"^assert ", cells[-1].source, re.M), "last code cell: the invariants"
    assert "colab-badge.svg" in nb.cells[0].source and path.name in nb.cells[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_helper_is_redefined_and_no_exception_is_hidden(path):
    kit = {n.lower() for n in kit_names()}
    for cell in code_cells(nbformat.read(path, as_version=4)):
        tree = ast.parse(python_source(cell))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                assert node.name.lower() not in kit, f"{path.name}: defines {node.name}, which cifarkit provides"
            assert not isinstance(node, ast.Try), f"{path.name}: try/except in a notebook can hide an exception"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_colab_install_cell_does_nothing_outside_colab(path, monkeypatch):
    cells = code_cells(nbformat.read(path, as_version=4))
    install = cells[1]
    assert "google.colab" in install.source and "pip install" in install.source
    calls = []
    shell = types.SimpleNamespace(run_line_magic=lambda *a: calls.append(a),
                                  system=lambda *a: calls.append(a))
    code = python_source(install)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(code, {"get_ipython": lambda: shell})
    assert calls == [], "outside Colab the install cell must not install anything"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(code, {"get_ipython": lambda: shell})
    assert len(calls) == 1 and "cifarkit" in str(calls[0]), "on Colab it installs the kit"


def test_every_public_name_resolves_and_is_documented():
    for name in cifarkit.__all__:
        obj = getattr(cifarkit, name)
        if callable(obj):
            assert obj.__doc__, f"cifarkit.{name} has no docstring"


def test_nbval_copies_are_parameterised_by_papermill_and_carry_expected_outputs(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    import nbval_prepare

    written = nbval_prepare.prepare(tmp_path, {"profile": "quick", "seed": 3})
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    expected = nbval_prepare.json.loads(nbval_prepare.EXPECTED.read_text())
    for path in written:
        cells = code_cells(nbformat.read(path, as_version=4))
        assert "parameters" in cells[0].metadata["tags"]
        injected = cells[1]
        assert injected.metadata["tags"] == ["injected-parameters"]
        assert ast.literal_eval(injected.source.split("profile = ", 1)[1].splitlines()[0]) == "quick"
        assert "seed = 3" in injected.source
        for cell in cells:
            if cell.source.startswith(nbval_prepare.MARKER):
                assert cell.outputs and [dict(o) for o in cell.outputs] == expected[path.stem][cell.id]
