"""Named run profiles for notebooks: `quick` (minutes, for CI and laptops) and `full` (the course run).

A notebook's setup cell states both profiles in plain sight and lets its parameters override them:

    cfg = resolve_profile(profile, {
        "quick": dict(epochs=2, n_train=2000, n_test=1000, batch_size=128),
        "full":  dict(epochs=15, n_train=None, n_test=None, batch_size=128),
    }, epochs=epochs, seed=seed, data=data_source, device=device)

`CIFARKIT_PROFILE` in the environment overrides the notebook's `profile` parameter, because nbval
(unlike papermill) cannot inject parameters.
"""
from __future__ import annotations

import os

from . import devices
from .training import seed_everything

PROFILE_NAMES = ("quick", "full")
COMMON_KEYS = ("seed", "data", "device", "precision")


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
