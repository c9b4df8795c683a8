"""Shared test fixtures: the real BabyLM data in ../shared/data and small configs.

Tests that need the shared data fail (never skip) when it is missing: CI must see them run.
Point BABYLM_DATA at another copy to run them elsewhere.
"""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
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
