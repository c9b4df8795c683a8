"""The device mesh and how logical axis names become shardings on it.

The mesh has the axes ("data", "fsdp", "tensor"); `config.mesh.rules` maps the model's logical
axis names to them (see model/axes.py). Training (train/sharding.py), the params-only loader
(checkpoint_params.py) and generation all lay arrays out through these functions, so they sit
below all of them.
"""

from __future__ import annotations

import math

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from babylm_jax.errors import ConfigError
from babylm_jax.model.axes import spec_for

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(config, num_devices: int) -> tuple[int, int, int]:
  sizes = [int(config.mesh[a]) for a in AXES]
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ConfigError(f"mesh sizes {dict(zip(AXES, sizes))} are invalid; give positive sizes "
                      f"and at most one -1 (which fills the remaining devices).")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % known:
      raise ConfigError(f"the mesh sizes {dict(zip(AXES, sizes))} do not divide the "
                        f"{num_devices} devices; change config.mesh.")
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ConfigError(f"the mesh {dict(zip(AXES, sizes))} needs {math.prod(sizes)} devices "
                      f"but {num_devices} are present; change config.mesh (-1 fills).")
  return tuple(sizes)


def make_mesh(config, devices=None) -> jax.sharding.Mesh:
  devices = jax.devices() if devices is None else list(devices)
  shape = mesh_shape(config, len(devices))
  return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def logical_to_sharding(axes_tree, shapes_tree, mesh, rules):
  """NamedShardings for a tree of logical-axis tuples and a matching tree of shapes/arrays.

  A mesh axis that does not divide a dimension is dropped for that dimension (replicated).
  """
  def one(names, x):
    shape = getattr(x, "shape", x)
    spec = spec_for(names, rules, mesh)
    parts = []
    for size, part in zip(shape, spec):
      axes = () if part is None else (part,) if isinstance(part, str) else part
      parts.append(part if size % math.prod(mesh.shape[a] for a in axes) == 0 else None)
    return NamedSharding(mesh, PartitionSpec(*parts))
  return jax.tree.map(one, axes_tree, shapes_tree, is_leaf=lambda x: isinstance(x, tuple))


def batch_sharding(mesh) -> NamedSharding:
  """Rows over data x fsdp, everything else replicated (any rank)."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
