"""Sweeps (issue 29.3): `-p seed=0,1,2` read as one run per value, combinations, folders, and a
sweep run in this process (no Dask) with its notebook x combination report."""
import json

import pytest

from cifarkit.course.notebook_params import ParameterError, list_notebooks, notebook_parameters, parse_cli_sweep, \
    split_top_level
from cifarkit.course.sweep import combination_folders, combination_label, combinations, run_sweep, swept_names
from conftest import REPO


@pytest.fixture(scope="module")
def specs():
    """Notebook 05's parameters, and `seeds` (in the schema, for the notebooks about to declare it)."""
    found = notebook_parameters(list_notebooks(REPO / "notebooks", ["05"]))
    return {name: spec.default for specs in found.values() for name, spec in specs.items()} | {"seeds": "[0]"}


def test_commas_outside_brackets_and_quotes_split_a_value():
    assert split_top_level("0,1,2") == ["0", "1", "2"]
    assert split_top_level("[1, 2],[3]") == ["[1, 2]", "[3]"]
    assert split_top_level("'a,b'") == ["'a,b'"] and split_top_level('{"a": 1, "b": 2}') == ['{"a": 1, "b": 2}']
    assert split_top_level("[1,") == ["[1,"] and split_top_level("1],[2") == ["1],[2"]


def test_a_sweep_parses_each_value_as_one_value_would_parse(specs):
    sweep = parse_cli_sweep(["seed=0,1, 2", "data_source=synthetic,cifar10-unverified", "epochs=3",
                             "seeds=[0,1],[2]", "weights=none,imagenet"], specs)
    assert sweep == {"seed": [0, 1, 2], "data_source": ["synthetic", "cifar10-unverified"], "epochs": [3],
                     "seeds": [[0, 1], [2]], "weights": [None, "imagenet"]}
    assert parse_cli_sweep(["seeds=[0,1,2]"], specs) == {"seeds": [[0, 1, 2]]}


@pytest.mark.parametrize("item,message", [
    ("seeds=0,1,2", "parameter 'seeds' takes a list, so seeds=0,1,2 is ambiguous: write seeds=[0,1,2] for one list"),
    ("seed=0,x", "parameter 'seed' expects int >= 0, got 'x'"),
    ("seed=0,,1", "parameter 'seed': the sweep '0,,1' has an empty value"),
    ("seed=1,1", "parameter 'seed': the sweep '1,1' names 1 twice"),
    ("data_source=synthetic,bogus", "parameter 'data_source' expects one of"),
    ("sed=0,1", "unknown parameter 'sed' (did you mean 'seed'?)"),
    ("seed", "malformed parameter 'seed': expected NAME=VALUE"),
])
def test_a_bad_sweep_is_one_line(specs, item, message):
    with pytest.raises(ParameterError) as info:
        parse_cli_sweep([item], specs)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_name_swept_twice_is_refused(specs):
    with pytest.raises(ParameterError, match="given more than once"):
        parse_cli_sweep(["seed=0,1", "seed=2"], specs)


def test_combinations_labels_and_folders():
    sweep = {"seed": [0, 1], "data_source": ["synthetic", "cifar10-unverified"], "epochs": [2]}
    combos = combinations(sweep)
    assert combos[:2] == [{"seed": 0, "data_source": "synthetic", "epochs": 2},
                          {"seed": 0, "data_source": "cifar10-unverified", "epochs": 2}] and len(combos) == 4
    names = swept_names(sweep)
    assert names == ["seed", "data_source"]
    assert combination_label(combos[3], names) == "seed=1, data_source=cifar10-unverified"
    assert combination_folders(combos, names)[3] == "seed=1_data_source=cifar10-unverified"
    lists = [{"seeds": [0, 1]}, {"seeds": [0, 1]}, {"seeds": "a/b c"}]
    assert combination_folders(lists, ["seeds"]) == ["seeds=-0-1", "seeds=-0-1-2", "seeds=a-b-c"]


@pytest.mark.timeout(600)
def test_a_sweep_in_this_process_writes_a_folder_per_combination_and_a_table(tmp_path, capsys):
    from test_engine import notebook

    nbs = tmp_path / "nbs"
    notebook(nbs, "01_a", sleep=0.1)
    result = run_sweep(nbs, {"seed": [0, 1], "data_source": ["synthetic"]}, out=tmp_path / "sweep")
    assert result.ok and result.labels == ["seed=0", "seed=1"]
    assert [r.run_dir.name for r in result.runs] == ["seed=0", "seed=1"]
    assert "== seed=1" in capsys.readouterr().out
    for r, seed in zip(result.runs, (0, 1)):
        run = json.loads(r.summary_json.read_text())
        assert run["notebooks"][0]["metrics"]["seed"] == seed and "worker" not in run["notebooks"][0]
    top = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert top["sweep"] == {"seed": [0, 1]} and top["parameters"] == {"data_source": "synthetic"} and top["ok"]
    md = result.summary_md.read_text()
    assert "| Engine | this process, one notebook at a time |" in md
    assert "| Notebook | seed=0 | seed=1 |" in md and "| 01_a.ipynb | ok " in md
    with pytest.raises(ParameterError, match="'seed' expects int >= 0"):  # every combination checked first
        run_sweep(nbs, {"seed": [0, -1]}, out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
