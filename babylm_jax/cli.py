"""Command-line plumbing behind launch.py: flag checks, multi-host start-up, mode dispatch.

User mistakes become one sentence on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

from absl import flags

from babylm_jax import config as config_lib
from babylm_jax.errors import EXIT_USER_ERROR, UserError

MODES = ("prepare", "train", "eval", "finetune", "export", "sweep")


def _load_config_file(path: str):
  path = path.split(":", 1)[0]
  if not os.path.isfile(path):
    raise UserError(f"--config file '{path}' does not exist; pass a file from configs/, "
                    f"e.g. --config configs/smoke.py.")
  spec = importlib.util.spec_from_file_location("_babylm_user_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise UserError(f"--config file '{path}' defines no get_config(); see configs/smoke.py.")
  return module.get_config()


def _override_keys(argv):
  keys = []
  for arg in argv[1:]:
    if arg.startswith("--config.") or arg.startswith("-config."):
      keys.append(arg.split("config.", 1)[1].split("=", 1)[0])
  return keys


def _config_path(argv):
  for i, arg in enumerate(argv[1:], start=1):
    if arg.startswith("--config=") or arg.startswith("-config="):
      return arg.split("=", 1)[1]
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def preflight(argv):
  """Checks --config and every --config.X override before absl parses them."""
  path = _config_path(argv)
  if path is None:
    raise UserError("no --config given; pass one, e.g. --config configs/smoke.py.")
  config_lib.check_override_keys(_load_config_file(path), _override_keys(argv))


def initialize_distributed():
  """Starts jax.distributed when this is one process of several.

  Explicit --coordinator_address/--num_processes/--process_id (any backend, CPU included,
  with gloo collectives), or a multi-host TPU VM slice, detected from its environment.
  Must run before anything touches devices.
  """
  import jax
  f = flags.FLAGS
  if f.cpu_devices:
    jax.config.update("jax_num_cpu_devices", f.cpu_devices)
  if f.coordinator_address:
    if f.num_processes is None or f.process_id is None:
      raise UserError("--coordinator_address needs --num_processes and --process_id too.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f.coordinator_address,
                               num_processes=f.num_processes, process_id=f.process_id)
  elif "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
    jax.distributed.initialize()


def _process_flags() -> list[str]:
  """The device and multi-process flags, passed on to a sweep's runs."""
  f = flags.FLAGS
  return [f"--{name}={f[name].value}" for name in (
      "cpu_devices", "coordinator_address", "num_processes", "process_id")
          if f[name].value is not None]


def dispatch(mode: str, config, workdir: str | None):
  if mode != "prepare" and not workdir:
    raise UserError(f"--mode={mode} needs --workdir.")
  if mode == "sweep":
    from babylm_jax.sweep.run import run_sweep
    return run_sweep(config, workdir, _process_flags())
  if "sweep" in config:
    raise UserError(f"this --config is a sweep; run it with --mode=sweep, not --mode={mode}.")
  if mode == "prepare":
    from babylm_jax.data.prepare import run_prepare
    return run_prepare(config, workdir)
  if mode == "train":
    from babylm_jax.train.loop import train
    return train(config, workdir)
  if mode == "eval":
    from babylm_jax.eval.run import run_eval
    return run_eval(config, workdir)
  if mode == "finetune":
    from babylm_jax.eval.finetune import run_finetune
    return run_finetune(config, workdir)
  if mode == "export":
    from babylm_jax.export.hf import run_export
    return run_export(config, workdir)
  raise UserError(f"--mode={mode} is unknown; use one of {', '.join(MODES)}.")


def main(argv, config_flag) -> int:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
  for noisy in ("jax._src.xla_bridge", "absl", "orbax"):  # backend probing and save chatter
    logging.getLogger(noisy).setLevel(logging.WARNING)
  try:
    preflight(argv)
    try:
      flags.FLAGS(argv)
    except flags.Error as e:
      raise UserError(f"bad command line: {str(e).splitlines()[0]}; check the flag's value "
                      f"and type.") from None
    if flags.FLAGS.mode != "sweep":  # a sweep's runs are child processes; they start it
      initialize_distributed()
    dispatch(flags.FLAGS.mode, config_flag.value, flags.FLAGS.workdir)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_USER_ERROR
  return 0
