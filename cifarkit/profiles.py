"""Named run profiles for notebooks: `quick` (minutes, for CI and laptops) and `full` (the course run).

A notebook's setup cell states both profiles in plain sight and lets its parameters override them:

    cfg = resolve_profile(profile, {
        "quick": dict(epochs=2, n_train=2000, n_test=1000, batch_size=128),
        "full":  dict(epochs=15, n_train=None, n_test=None, batch_size=128),
    }, epochs=epochs, seed=seed, data=data_source, device=device)

`CIFARKIT_PROFILE` in the environment overrides the notebook's `profile` parameter, because nbval
(unlike papermill) cannot inject parameters. `notebook_profiles(path)` reads those profile dicts
back out of a notebook file without running it, and `notebook_literal(path, name)` any other literal
setting (benchmarks use them to train what a notebook trains).
"""
from __future__ import annotations

import ast
import json
import os

from . import devices
from .training import seed_everything

PROFILE_NAMES = ("quick", "full")
COMMON_KEYS = ("seed", "data", "device", "precision")
#: profile keys whose notebook parameter has another name (the rest share their name)
PARAMETER_NAMES = {"data": "data_source"}


class Profile(dict):
    """A dict of settings that also reads as attributes: `cfg.epochs == cfg["epochs"]`."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"profile has no setting {key!r}; it has {sorted(self)}") from None

    def summary(self) -> str:
        width = max(len(k) for k in self)
        return "\n".join(f"  {k:<{width}}  {v}" for k, v in self.items())


def resolve_profile(profile: str, profiles: dict, verbose: bool = True, **overrides) -> Profile:
    """Pick `profiles[profile]`, apply the overrides that are not None, seed everything and resolve
    the device and precision. Common keys with defaults: seed=0, data="auto", device="auto",
    precision="auto". Returns a `Profile` with `name`, resolved `device` (torch.device) and
    `precision` ("32", "bf16-mixed" or "16-mixed")."""
    env = os.environ.get("CIFARKIT_PROFILE")
    if env:
        if verbose and env != profile:
            print(f"CIFARKIT_PROFILE={env} overrides profile={profile!r}")
        profile = env
    if profile not in profiles:
        raise ValueError(f"unknown profile {profile!r}; this notebook defines {sorted(profiles)}")
    # the notebook's parameters, as papermill injected them, against the runner's schema
    from .params import SCHEMA, check_value
    for key, value in overrides.items():
        name = PARAMETER_NAMES.get(key, key)
        if name in SCHEMA and value is not None:
            overrides[key] = check_value(name, value)
    settings = {"seed": 0, "data": "auto", "device": "auto", "precision": "auto"}
    settings.update(profiles[profile])
    for key, value in overrides.items():
        if key not in settings:
            raise ValueError(f"override {key!r} is not a setting of profile {profile!r}: {sorted(settings)}")
        if value is not None:
            settings[key] = value
    cfg = Profile(name=profile, **settings)
    cfg["device"] = devices.resolve_device(cfg["device"])
    cfg["precision"] = devices.resolve_precision(cfg["precision"], cfg["device"])
    seed_everything(cfg["seed"])
    if verbose:
        print(f"Profile {profile!r} on {devices.describe(cfg['device'], cfg['precision'])}:\n{cfg.summary()}")
    return cfg


def _profile_literal(node: ast.AST):
    """The value of a literal, where ``dict(a=1, ...)`` calls count as literals too."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _profile_literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {ast.literal_eval(k): _profile_literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _code_cell_trees(path):
    """(source, parsed tree) of each code cell of the notebook at `path` that parses as Python
    (cells with IPython syntax such as ``%pip`` are skipped)."""
    nb = json.loads(open(path, encoding="utf-8").read())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        try:
            yield source, ast.parse(source)
        except SyntaxError:
            continue


def notebook_profiles(path) -> dict[str, dict]:
    """The profiles that the notebook at `path` passes to `resolve_profile`, read from its source
    (nothing is run): ``{"quick": {...}, "full": {...}}``.

    Raises ValueError when no code cell calls ``resolve_profile`` with a literal dict of profiles.
    """
    for source, tree in _code_cell_trees(path):
        if "resolve_profile" not in source:
            continue
        for node in ast.walk(tree):
            func = getattr(node, "func", None)
            name = getattr(func, "attr", None) or getattr(func, "id", None)
            if isinstance(node, ast.Call) and name == "resolve_profile" and len(node.args) >= 2:
                try:
                    return _profile_literal(node.args[1])
                except ValueError as e:
                    raise ValueError(f"{path}: the profiles passed to resolve_profile are not literals ({e})") from None
    raise ValueError(f"{path}: no code cell calls resolve_profile(profile, {{...profiles...}})")


def notebook_literal(path, name: str):
    """The literal that a code cell of the notebook at `path` assigns to `name` at its top level
    (the first such cell), read from its source without running it, e.g. notebook 05's ``blocks``.

    Raises LookupError when no cell assigns a literal to `name`.
    """
    for _, tree in _code_cell_trees(path):
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and getattr(node.targets[0], "id", None) == name):
                try:
                    return _profile_literal(node.value)
                except ValueError:
                    continue
    raise LookupError(f"{path}: no code cell assigns a literal to {name!r}")
