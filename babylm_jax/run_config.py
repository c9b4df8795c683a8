"""A --config file for a trained run: `--config babylm_jax/run_config.py:WORKDIR`.

`get_config(workdir)` is the run's resolved `config.json` (written by training) laid over
`base_config()`, so eval, export and finetune need neither the recipe nor the training
overrides again; `--config.a.b=value` flags still override it. launch.py uses this file when
one of those modes is given a --workdir and no --config.
"""


def get_config(workdir: str):
  from babylm_jax import config as config_lib
  return config_lib.from_run(workdir)
