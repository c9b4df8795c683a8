"""The lock files pin what pyproject.toml asks for, and the tests run in the locked environment.

The README's commands install from requirements/*.txt; a lock that misses a dependency, pins a
version below pyproject's bound, or an environment that drifted from the lock (someone installed
with plain `pip install -e .` a month later) fails here instead of giving other numbers quietly.
"""

import importlib.metadata
import pathlib
import re
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.M)


def _norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: pathlib.Path) -> dict[str, str]:
  return {_norm(n): v for n, v in PIN.findall(path.read_text())}


def _requirements(extras=()):
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  reqs = list(project["dependencies"])
  for extra in extras:
    reqs += project["optional-dependencies"][extra]
  out = {}
  for req in reqs:
    name, bound = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*(?:>=\s*([^,\s]+))?", req).groups()
    out[_norm(name)] = bound
  return out


def _version_tuple(v: str):
  return tuple(int(p) for p in re.findall(r"\d+", v.split("+")[0])[:3])


@pytest.mark.parametrize("lock,extras", [("cpu.txt", ()), ("test.txt", ("test", "export"))])
def test_each_lock_pins_every_dependency_at_or_above_its_bound(lock, extras):
  pins = _pins(ROOT / "requirements" / lock)
  if lock == "test.txt":
    pins.update(_pins(ROOT / "requirements" / "torch.txt"))
  for name, bound in _requirements(extras).items():
    assert name in pins, f"requirements/{lock} does not pin {name}; run the pip-compile command " \
                         f"at its top again."
    if bound:
      assert _version_tuple(pins[name]) >= _version_tuple(bound), (name, pins[name], bound)


def test_the_lock_files_say_how_they_were_made():
  for lock in ("cpu.txt", "test.txt"):
    head = (ROOT / "requirements" / lock).read_text()[:600]
    assert "pip-compile" in head and "pyproject.toml" in head, lock


def test_the_running_environment_is_the_locked_one():
  pins = _pins(ROOT / "requirements" / "test.txt")
  pins.update(_pins(ROOT / "requirements" / "torch.txt"))
  drift = []
  for name, version in sorted(pins.items()):
    try:
      have = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      drift.append(f"{name} not installed (lock {version})")
      continue
    if have.split("+")[0] != version:
      drift.append(f"{name} {have} (lock {version})")
  assert not drift, ("the environment differs from requirements/test.txt: " + "; ".join(drift)
                     + "; install with the README's test command.")
