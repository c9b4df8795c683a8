"""Shared test fixtures: the real BabyLM data in ../shared/data and small configs.

Tests that need the shared data fail (never skip) when it is missing: CI must see them run.
Point BABYLM_DATA at another copy to run them elsewhere.
"""

import os
import pathlib
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# One JAX compilation cache for the session, shared by this process and every run the tests
# launch: the same small step compiled by a dozen subprocesses is compiled once (a smoke run
# takes about half the time). Fresh per session, so no test depends on an earlier one.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="babylm_jax_tests_xla_")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# The tests' programs are tiny: XLA takes longer to compile them than to run them, and its CPU
# backend at LLVM optimisation level 0 compiles them faster (tests/test_step.py: 190 s -> 130 s
# of wall time, 173 -> 109 s of CPU, 2026-12-08 beside a training run). A fixed flag, not
# another computation: both sides of every comparison run under it; the runs the tests launch
# get it too (launch_helpers.env), except the few that compute more than they compile (a
# 300-step run is 10-30% slower at level 0) and the benchmarks and real runs, which keep XLA's
# defaults. BABYLM_TEST_XLA_FLAGS="" runs the tests at the defaults.
TEST_XLA_FLAGS = os.environ.get("BABYLM_TEST_XLA_FLAGS", "--xla_backend_optimization_level=0")
if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):  # kept: a subprocess's device count
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
sys.path.insert(0, str(ROOT))
DATA = pathlib.Path(os.environ.get("BABYLM_DATA", ROOT.parent / "shared" / "data")).resolve()


def data_path(*parts) -> pathlib.Path:
  """A path under the shared data folder; fails the test when it is missing."""
  path = DATA.joinpath(*parts)
  if not path.exists():
    pytest.fail(f"shared data '{path}' is missing; tests need ../shared/data "
                f"(or BABYLM_DATA) with the BabyLM text and evaluation sets.")
  return path


@pytest.fixture
def shared_data():
  return data_path()


def load_config(name: str):
  """configs/<name>.py's get_config()."""
  import importlib
  return importlib.import_module(f"configs.{name}").get_config()


def smoke_config(steps: int):
  """configs/smoke.py on the shared 100k-word text for `steps` steps, checkpointed at the last:
  the tiny trained run that the tests of what follows training (export, submit) start from."""
  c = load_config("smoke")
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.train.steps = steps
  c.checkpoint.every = steps
  return c


def not_shared(folder) -> list[str]:
  """Entries under `folder` (itself included) whose mode is not what `cp` would give them:
  0666 for files and 0777 for folders, less the umask (0644 / 0755 under umask 022)."""
  from babylm_jax.file_modes import umask
  mask = umask()
  folder = pathlib.Path(folder)
  wrong = []
  for p in [folder, *folder.rglob("*")]:
    if p.is_symlink():
      continue
    want = (0o777 if p.is_dir() else 0o666) & ~mask
    if p.stat().st_mode & 0o777 != want:
      wrong.append(f"{p.relative_to(folder.parent)} {oct(p.stat().st_mode & 0o777)}")
  return wrong
