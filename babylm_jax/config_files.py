"""Reading a --config file: run its get_config() and turn every way it can fail into one line.

Used by the command line (cli.py) and by the sweep runner (sweep/spec.py), which resolves each
variant's config the way launch.py would; it sits below both so that neither reaches into the
other.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from babylm_jax.errors import UserError


def _fail(path: str, what: str):
  raise UserError(f"--config file '{path}' {what}; fix it, or start from a file in configs/ "
                  f"such as configs/smoke.py.")


def load(spec: str):
  """get_config() of a --config file ('path' or 'path:argument'), every failure one line."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise UserError(f"--config file '{path}' does not exist; pass a file from configs/, "
                    f"e.g. --config configs/smoke.py.")
  spec_ = importlib.util.spec_from_file_location("_babylm_user_config", path)
  module = importlib.util.module_from_spec(spec_)
  try:
    spec_.loader.exec_module(module)
  except SyntaxError as e:
    _fail(path, f"has a syntax error at line {e.lineno}: {e.msg}")
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001 - whatever a user's file raises is theirs to fix
    _fail(path, f"failed to run ({type(e).__name__}: {_first_line(e)})")
  if not callable(getattr(module, "get_config", None)):
    _fail(path, "defines no get_config()")
  try:
    config = module.get_config(*([arg] if arg else []))
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001
    _fail(path, f"raised {type(e).__name__} in get_config(): {_first_line(e)}")
  if not isinstance(config, ml_collections.ConfigDict):
    _fail(path, f"returns a {type(config).__name__} from get_config(), not an "
                f"ml_collections.ConfigDict (return base_config() with your changes)")
  return config


def _first_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return lines[0][:200] if lines else ""
