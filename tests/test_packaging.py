"""The set-up files agree with each other: lock, conda environment, pyproject ranges, README, CI."""
import re
import subprocess
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO


def pins_of(name: str) -> dict:
    """``{package: version}`` of a requirements file of ``name==version`` lines."""
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, version = line.split("==")
            pins[canonicalize_name(package)] = version
    return pins


def lock_pins() -> dict:
    return pins_of("requirements.lock")


def conda_pins() -> dict:
    text = (REPO / "environment.yml").read_text()
    return {canonicalize_name(m[0]): m[1] for m in re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}


def test_lock_pins_the_required_torch_pair():
    pins = lock_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_environment_yml_matches_the_lock():
    assert conda_pins() == lock_pins()
    assert re.search(r"python=3\.11", (REPO / "environment.yml").read_text())


def test_pyproject_ranges_admit_the_pins_and_list_every_locked_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    reqs = [Requirement(r) for r in project["dependencies"] + extras]
    pins = lock_pins()
    assert {canonicalize_name(r.name) for r in reqs} == set(pins)
    for r in reqs:
        assert "==" not in str(r.specifier), f"{r}: runtime requirements are ranges, not pins"
        assert r.specifier.contains(pins[canonicalize_name(r.name)]), f"{r} excludes the locked version"


def test_readme_shows_the_two_commands_and_ci_runs_its_test_command():
    readme = (REPO / "README.md").read_text()
    assert readme.index("make run") < readme.index("make test")
    ci = (REPO / ".ci" / "run").read_text()
    extracted = subprocess.run(["awk", "/<!-- ci-test-command -->/{getline; getline; print; exit}",
                                str(REPO / "README.md")], capture_output=True, text=True).stdout.strip()
    assert extracted.startswith("make test")
    assert "ci-test-command" in ci and 'eval "$test_cmd"' in ci


def test_makefile_targets_install_from_the_lock():
    make = (REPO / "Makefile").read_text()
    for target in ("run:", "test:", "bench:", "test-browser:"):
        assert re.search(rf"^{target}", make, re.M), target
    assert "-r requirements.lock" in make


def test_oldest_environment_pins_exactly_the_declared_floors():
    """`make test-oldest` tests what pyproject.toml promises: each runtime and test requirement's
    lower bound, pinned, and nothing else (JupyterLab, Playwright and pytest-xdist drive `make test`
    only: the browser test and the unit tests' two processes)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tested = project["dependencies"] + [r for r in project["optional-dependencies"]["dev"]
                                        if not r.startswith(("jupyterlab", "playwright", "pytest-xdist"))]
    floors = {}
    for text in tested:
        req = Requirement(text)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{text}: a range needs one >= floor for make test-oldest to test"
        floors[canonicalize_name(req.name)] = lower[0]
    pins = {name: Version(v) for name, v in pins_of("requirements-oldest.txt").items()}
    floors = {name: Version(v) for name, v in floors.items()}
    assert pins == floors, {k: (floors.get(k), pins.get(k)) for k in set(pins) | set(floors)
                            if floors.get(k) != pins.get(k)}
    assert re.search(r"^test-oldest:", (REPO / "Makefile").read_text(), re.M)


def test_readme_is_a_front_door():
    """At most about 120 lines; the measurement narrative lives in docs/ and bench/results.md, and
    every document README links to exists."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if not link.startswith("http"):
            assert (REPO / link).exists(), link
