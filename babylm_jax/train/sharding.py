"""The device mesh and how parameters and batches are laid out on it.

The mesh has the axes ("data", "fsdp", "tensor"); `config.mesh.rules` maps the model's logical
axis names to them (see model/axes.py). Batches are split by rows over data x fsdp. Each
process passes only its own rows to `global_batch`, which assembles the global arrays.
"""

from __future__ import annotations

import jax
import numpy as np

from babylm_jax.errors import ConfigError
# The mesh itself and the logical -> mesh mapping live below train/ (the params-only loader
# and generation use them too); re-exported here for the training code.
from babylm_jax.mesh import (AXES, BATCH_AXES, batch_sharding, logical_to_sharding,  # noqa: F401
                             make_mesh, mesh_shape, replicated)


def batch_divisor(mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def global_batch(local_batch: dict, mesh) -> dict:
  """Global arrays from this process's rows (jax.make_array_from_process_local_data)."""
  sharding = batch_sharding(mesh)
  out = {}
  for k, v in local_batch.items():
    v = np.asarray(v)
    rows = v.shape[0] * jax.process_count()
    if rows % batch_divisor(mesh):
      raise ConfigError(f"a global batch of {rows} rows cannot be split over the "
                        f"{batch_divisor(mesh)} data x fsdp devices; change "
                        f"train.tokens_per_step or config.mesh.")
    out[k] = jax.make_array_from_process_local_data(sharding, v)
  return out
