"""Command-line plumbing behind launch.py: help, config files, flag checks, multi-host
start-up, mode dispatch and exit codes.

Exit codes: 0 done; 2 a user mistake or an operating-system failure, as one sentence on stderr
(never a traceback); 130 stopped by Ctrl-C. Every config field is validated before any data is
read or device touched.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import flags

from babylm_jax import config as config_lib
from babylm_jax import config_files
from babylm_jax import interrupts
from babylm_jax.errors import EXIT_USER_ERROR, UserError

MODES = ("prepare", "corpus", "train", "eval", "finetune", "export", "submit", "generate",
         "sweep")
MODE_HELP = {
    "prepare": "build (or reuse) the tokenizer and token store; print words and tokens",
    "train": "train a run in --workdir, or resume it (the default)",
    "eval": "score the run's checkpoint on the zero-shot suites",
    "finetune": "fine-tune the run's checkpoint on a (Super)GLUE task",
    "export": "write the run's checkpoint as a Hugging Face folder",
    "submit": "write a BabyLM submission folder: export, milestones, official predictions",
    "sweep": "train and evaluate every variant of a sweep config; print the table",
    "corpus": "build the corpus folder of a recipe (data.corpus) into --workdir",
    "generate": "sample text from the run's checkpoint into a corpus folder (+ manifest)",
}
# Modes that read a trained run: without --config they use the run's own config.json.
READS_RUN = ("eval", "finetune", "export", "submit", "generate")
RUN_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_config.py")


def usage(flags_help: str) -> str:
  modes = "\n".join(f"  {m:<9} {MODE_HELP.get(m, '')}" for m in MODES)
  return (
      "usage: python launch.py --config CONFIG.py --workdir DIR [--mode=MODE] "
      "[--config.a.b=VALUE ...]\n\n"
      "Run it from the repository root, e.g.\n"
      "  python launch.py --config configs/smoke.py --workdir runs/smoke\n\n"
      f"modes (--mode):\n{modes}\n"
      "eval, finetune, export and submit read the run's own config.json from --workdir when no "
      "--config is given.\nAny config field can be overridden with --config.a.b=value; the "
      "fields and their defaults are in babylm_jax/config.py.\n\n"
      f"flags:\n{flags_help}")


def _override_keys(argv):
  keys = []
  for arg in argv[1:]:
    if arg.startswith("--config.") or arg.startswith("-config."):
      keys.append(arg.split("config.", 1)[1].split("=", 1)[0])
  return keys


def _flag_value(argv, name: str):
  """The value of --name=X or --name X in argv (absl accepts one or two dashes)."""
  for i, arg in enumerate(argv[1:], start=1):
    for dashes in ("--", "-"):
      if arg.startswith(f"{dashes}{name}="):
        return arg.split("=", 1)[1]
      if arg == f"{dashes}{name}" and i + 1 < len(argv):
        return argv[i + 1]
  return None


def check_mode(argv):
  """Names an unknown --mode, with the modes there are, before anything else is checked."""
  mode = _flag_value(argv, "mode")
  if mode is not None and mode not in MODES:
    raise UserError(f"--mode={mode} is unknown; use one of {', '.join(MODES)}.")


def preflight(argv) -> list[str]:
  """Checks --config and every --config.X override before absl parses them.

  Returns argv, with --config set to the run's own config.json for a mode that reads a
  trained run and was given no --config.
  """
  path = _flag_value(argv, "config")
  if path is None:
    mode, workdir = _flag_value(argv, "mode") or "train", _flag_value(argv, "workdir")
    if mode not in READS_RUN or not workdir:
      raise UserError("no --config given; pass one, e.g. --config configs/smoke.py (eval, "
                      "finetune and export read it from --workdir instead).")
    path = f"{RUN_CONFIG}:{workdir}"
  config_lib.check_override_keys(config_files.load(path), _override_keys(argv))
  # absl wants --config before its --config.a.b overrides; accept them in any order.
  rest = []
  for i, arg in enumerate(argv[1:], start=1):
    if arg in ("--config", "-config") or (i > 1 and argv[i - 1] in ("--config", "-config")):
      continue
    if not arg.startswith(("--config=", "-config=")):
      rest.append(arg)
  return [argv[0], f"--config={path}", *rest]


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
  if mode == "corpus":
    from babylm_jax.data.corpus import run_corpus
    return run_corpus(config, workdir)
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
  if mode == "submit":
    from babylm_jax.export.submit import run_submit
    return run_submit(config, workdir)
  if mode == "generate":
    from babylm_jax.generate import run_generate
    return run_generate(config, workdir)
  raise UserError(f"--mode={mode} is unknown; use one of {', '.join(MODES)}.")


class _HideLibraryChatter(logging.Filter):
  """Orbax logs every save and restore, and its background threads and asyncio tasks log
  tracebacks of errors that reach us anyway as exceptions (reported as one line). None of it
  is for the user."""

  def filter(self, record):
    return f"{os.sep}orbax{os.sep}" not in record.pathname and record.name != "asyncio"


def _quiet_unraisable(hook):
  """A Ctrl-C that lands in a garbage-collector callback is remembered by `interrupts`, not
  printed as 'Exception ignored'."""
  def quiet(unraisable):
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
      hook(unraisable)
  return quiet


def _quiet_excepthook(hook):
  """After a failed checkpoint write, tensorstore's callbacks find orbax's event loop closed
  and print that through sys.excepthook; the failure itself is reported as one line."""
  def quiet(kind, value, tb):
    if not (tb is not None and tb.tb_frame.f_code.co_name == "call_soon_threadsafe"
            and isinstance(value, RuntimeError)):
      hook(kind, value, tb)
  return quiet


def _setup_console():
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
  for handler in logging.getLogger().handlers:
    handler.addFilter(_HideLibraryChatter())
  for noisy in ("jax._src.xla_bridge", "absl", "orbax"):  # backend probing and save chatter
    logging.getLogger(noisy).setLevel(logging.WARNING)
  sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
  sys.excepthook = _quiet_excepthook(sys.excepthook)


def main(argv, config_flag) -> int:
  _setup_console()
  interrupts.install()
  if any(a in ("-h", "--help", "-help", "--helpfull", "-?") for a in argv[1:]):
    print(usage(flags.FLAGS.main_module_help()))
    return 0
  try:
    check_mode(argv)  # before --config: a misspelt mode is the first thing to say
    argv = sys.argv[:] = preflight(argv)  # config_flags reads its overrides from sys.argv
    try:
      flags.FLAGS(argv)
    except flags.Error as e:
      raise UserError(f"bad command line: {str(e).splitlines()[0]}; check the flag's value "
                      f"and type.") from None
    if flags.FLAGS.cpu_devices is not None and flags.FLAGS.cpu_devices < 1:
      raise UserError(f"--cpu_devices ({flags.FLAGS.cpu_devices}) must be at least 1; leave it "
                      f"out to use the CPU as one device.")
    # A sweep config holds variants, each checked by the sweep itself before anything trains;
    # its runs are child processes, which start jax.distributed themselves.
    if flags.FLAGS.mode != "sweep":
      config_lib.validate(config_flag.value)
      initialize_distributed()
    dispatch(flags.FLAGS.mode, config_flag.value, flags.FLAGS.workdir)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_USER_ERROR
  except OSError as e:
    from babylm_jax.workdir import os_error_line
    print(f"error: {os_error_line(e)}", file=sys.stderr)
    return EXIT_USER_ERROR
  except KeyboardInterrupt:
    print("\nerror: interrupted (Ctrl-C); only complete files were kept. Run the same command "
          "again to continue.", file=sys.stderr)
    return interrupts.EXIT_INTERRUPTED
  return interrupts.EXIT_INTERRUPTED if interrupts.requested() == "SIGINT" else 0
