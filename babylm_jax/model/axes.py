"""Logical axis names for parameters and activations, and how they become mesh shardings.

Every parameter of the model carries a tuple of logical names (`"vocab"`, `"embed"`, ...) in
its `axes` metadata; `config.mesh.rules` maps each name to mesh axes. The model itself knows no
mesh: `constrain()` pins an activation's sharding only while `activation_sharding(mesh, rules)`
is active (the training step turns it on while tracing), and is the identity otherwise, so the
same module runs unchanged on one CPU.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
from jax.sharding import NamedSharding, PartitionSpec

_CURRENT: contextvars.ContextVar = contextvars.ContextVar("babylm_activation_sharding",
                                                          default=None)


def spec_for(names, rules, mesh=None) -> PartitionSpec:
  """The PartitionSpec of an array whose dimensions carry logical `names`.

  A name missing from `rules` (or mapped to None) is replicated. A mesh axis is used at most
  once per array, and axes of size 1 are dropped, so small meshes give plain specs.
  """
  table = dict((k, v) for k, v in rules)
  used, parts = set(), []
  for name in names:
    target = table.get(name) if name is not None else None
    if target is None:
      parts.append(None)
      continue
    axes = (target,) if isinstance(target, str) else tuple(target)
    axes = tuple(a for a in axes if a not in used
                 and (mesh is None or mesh.shape[a] > 1))
    used.update(axes)
    parts.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return PartitionSpec(*parts)


@contextlib.contextmanager
def activation_sharding(mesh, rules):
  """While active, `constrain()` pins activations to `mesh` according to `rules`."""
  token = _CURRENT.set((mesh, tuple(rules)))
  try:
    yield
  finally:
    _CURRENT.reset(token)


def constrain(x: jax.Array, names) -> jax.Array:
  """Sharding constraint by logical names; the identity outside `activation_sharding`."""
  current = _CURRENT.get()
  if current is None:
    return x
  mesh, rules = current
  spec = spec_for(names, rules, mesh)
  # A dimension that the mesh axes do not divide is left replicated rather than padded.
  parts = []
  for size, part in zip(x.shape, spec):
    axes = () if part is None else (part,) if isinstance(part, str) else part
    n = 1
    for a in axes:
      n *= mesh.shape[a]
    parts.append(part if size % n == 0 else None)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*parts)))
