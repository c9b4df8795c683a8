"""Entry point: parses flags and hands the config to the package.

  python launch.py --config configs/smoke.py --workdir runs/smoke [--mode=train]
  python launch.py --config configs/strict_small.py --workdir DIR --config.train.lr=5e-3

Modes: prepare, train (default), eval, finetune, export, sweep, corpus.
"""

import sys

from absl import flags
from ml_collections import config_flags

from babylm_jax import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A configs/*.py file; override fields with --config.a.b=value. eval, "
    "finetune and export default to the run's own config.json in --workdir.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: a local path or gs://bucket/path.")
flags.DEFINE_enum("mode", "train", cli.MODES, "What to do with the config and workdir.")
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for a multi-process run off TPU VMs.")
flags.DEFINE_integer("num_processes", None, "Number of processes in a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
flags.DEFINE_integer("cpu_devices", None,
                     "Split the CPU into this many virtual devices (testing meshes on a CPU).")

if __name__ == "__main__":
  sys.exit(cli.main(sys.argv, _CONFIG))
