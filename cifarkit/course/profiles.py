"""Named run profiles for notebooks: `quick` (minutes, for CI and laptops) and `full` (the course run).

Any notebook can state its profiles in plain sight and let its parameters override them:

    cfg = resolve_profile(profile, {
        "quick": dict(epochs=2, n_train=2000, n_test=1000, batch_size=128),
        "full":  dict(epochs=15, n_train=None, n_test=None, batch_size=128),
    }, epochs=epochs, seed=seed, data=data_source, device=device)

`CIFARKIT_PROFILE` in the environment overrides the notebook's `profile` parameter, because nbval
(unlike papermill) cannot inject parameters. The course's own notebooks keep their profiles in
`cifarkit.course.PROFILES` and call `ck.setup(notebook, profile, ...)`, which calls this function;
benchmarks read the same dicts.
"""
from __future__ import annotations

from .. import devices
from . import settings
from ..seeds import seed_everything

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
    env = settings.profile()
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
    chosen = {"seed": 0, "data": "auto", "device": "auto", "precision": "auto"}
    chosen.update(profiles[profile])
    for key, value in overrides.items():
        if key not in chosen:
            raise ValueError(f"override {key!r} is not a setting of profile {profile!r}: {sorted(chosen)}")
        if value is not None:
            chosen[key] = value
    cfg = Profile(name=profile, **chosen)
    cfg["device"] = devices.resolve_device(cfg["device"])
    cfg["precision"] = devices.resolve_precision(cfg["precision"], cfg["device"])
    seed_everything(cfg["seed"])
    if verbose:
        print(f"Profile {profile!r} on {devices.describe(cfg['device'], cfg['precision'])}:\n{cfg.summary()}")
    return cfg
