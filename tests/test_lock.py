"""requirements.lock, which `make setup` installs with --no-deps, covers what pyproject.toml asks for.

With --no-deps pip resolves nothing, so a dependency added to pyproject.toml but not to the lock would
simply be missing from a clean clone's venv; and a pin outside pyproject's range would install a set
that pip itself would refuse.
"""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version and " " not in line, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    """What pyproject.toml asks for: the dependencies, every extra, and the build backend."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    build = pyproject["build-system"]["requires"]
    return [Requirement(req) for req in project["dependencies"] + extras + build]


def test_every_declared_requirement_is_pinned_within_its_range():
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside {requirement}"
        )
