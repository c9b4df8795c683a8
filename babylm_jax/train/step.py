"""The training state and the jitted, sharded training and evaluation steps.

The step is a pure function `(state, batch) -> (state, metrics)` under `jax.jit` with explicit
in/out shardings and the state donated. The model is split into a graph and a plain dict of
parameters outside, and merged inside the traced function (no `nnx.jit` in the hot path).
Dropout keys are `fold_in(key(seed), step)`, so nothing random lives in a checkpoint.

What is predicted and how it is scored is the objective's (train/objectives/, picked once by
`objective.kind`); the step calls its interface: loss sums of each (micro-)batch, the loss over
the whole batch's counts, the metrics, and the update of the teacher an objective may keep in
the state beside the parameters and their EMA.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from babylm_jax.checkpoint_params import abstract_model  # noqa: F401 - re-exported
from babylm_jax.errors import ConfigError
from babylm_jax.model.axes import activation_sharding
from babylm_jax.model.gpt_bert import GPTBert
from babylm_jax.train import objectives
from babylm_jax.train.optimizer import ema_decay_at, ema_update, make_optimizer
from babylm_jax.train.sharding import (BATCH_AXES, batch_divisor, batch_sharding,
                                       logical_to_sharding, replicated)

BATCH_KEYS = ("input_ids", "targets", "loss_mask", "segment_ids", "is_causal")


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar
  params: dict  # plain nested dict (nnx.State.to_pure_dict()) of float32 arrays
  ema_params: dict
  opt_state: Any
  # What the objective keeps beside the parameters, outside the optimizer (the bootstrap
  # teacher: a dict of the encoder's parameter groups); {} for the others.
  teacher: dict = flax.struct.field(default_factory=dict)


def _init_fn(config, tx):
  objective = objectives.get(config)

  def init():
    model = GPTBert(config.model, rngs=nnx.Rngs(params=jax.random.key(config.seed)))
    params = nnx.to_pure_dict(nnx.state(model))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      ema_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params),
                      teacher=objective.init_teacher(params))
  return init


def _opt_state_shardings(abstract_opt_state, param_shardings, abstract_params, mesh):
  """Optimizer leaves that mirror a parameter (Adam moments) take its sharding."""
  by_path = {}
  for (path, sh), leaf in zip(jax.tree_util.tree_flatten_with_path(param_shardings)[0],
                              jax.tree.leaves(abstract_params)):
    by_path[tuple(path)] = (sh, leaf.shape)

  def pick(path, leaf):
    for i in range(len(path)):
      hit = by_path.get(tuple(path[i:]))
      if hit is not None and hit[1] == leaf.shape:
        return hit[0]
    return replicated(mesh)
  return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def _state_shardings(config, derived, mesh):
  graphdef, axes, abstract_params = abstract_model(config)
  tx, _ = make_optimizer(config, derived)
  abstract = jax.eval_shape(_init_fn(config, tx))
  param_sh = logical_to_sharding(axes, abstract_params, mesh, config.mesh.rules)
  shardings = TrainState(
      step=replicated(mesh), params=param_sh, ema_params=param_sh,
      opt_state=_opt_state_shardings(abstract.opt_state, param_sh, abstract_params, mesh),
      teacher={k: param_sh[k] for k in abstract.teacher})
  return graphdef, tx, abstract, shardings


def create_train_state(config, derived, mesh):
  """(graphdef, state, state shardings); the state is initialised directly into its shardings.

  With `init.from_hf` the params and EMA params start from that exported folder instead.
  """
  graphdef, tx, _, shardings = _state_shardings(config, derived, mesh)
  state = jax.jit(_init_fn(config, tx), out_shardings=shardings)()
  if config.init.from_hf:
    from babylm_jax.model.hf_weights import load_from_hf
    params = jax.device_put(load_from_hf(config.init.from_hf, config), shardings.params)
    # Copies, not the same buffers: the train step donates each part of the state separately.
    ema = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=shardings.ema_params)(
        params)
    teacher = jax.jit(objectives.get(config).init_teacher, out_shardings=shardings.teacher)(
        params)
    state = state.replace(params=params, ema_params=ema, teacher=teacher)
  return graphdef, state, shardings


def abstract_train_state(config, derived, mesh):
  """(graphdef, TrainState of ShapeDtypeStructs carrying their shardings), for restoring."""
  graphdef, _, abstract, shardings = _state_shardings(config, derived, mesh)
  return graphdef, jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def params_to_model(graphdef, params) -> GPTBert:
  return nnx.merge(graphdef, params)


def _pick(batch):
  missing = [k for k in BATCH_KEYS if k not in batch]
  if missing:
    raise KeyError(f"the batch lacks {missing}; batches need {BATCH_KEYS}.")
  return {k: batch[k] for k in BATCH_KEYS}


def _batch_shardings(mesh):
  return {k: batch_sharding(mesh) for k in BATCH_KEYS}


def make_train_step(config, derived, graphdef, mesh, state_shardings, teachers=()):
  """jitted (state, batch) -> (state, metrics); the state is donated. It compiles once per
  batch shape of `derived.phases`. `teachers` (train/distill.py): frozen networks whose
  forward passes run inside the step; their parameters are an argument, never donated."""
  tx, schedule = make_optimizer(config, derived)
  objective, t = objectives.get(config), config.train
  if teachers:
    from babylm_jax.train import distill
    objective = distill.make_objective(objective, teachers)
  frozen = tuple(tc.params for tc in teachers)
  M, divisor = t.micro_batches, batch_divisor(mesh)
  for p in derived.phases:
    if p.batch_rows % divisor:
      raise ConfigError(f"steps {p.start}-{p.end - 1} have {p.batch_rows} rows, which the "
                        f"{divisor} data x fsdp devices cannot share evenly; change "
                        f"train.tokens_per_step, the batch-size ramp or config.mesh.")
  base_key = jax.random.key(config.seed)

  def loss_fn(params, batch, key, totals, teacher):
    model = nnx.merge(graphdef, params)
    sums = objective.sums(model, batch, config, teacher, deterministic=False,
                          rngs=nnx.Rngs(dropout=key), divisor=divisor)
    return objective.loss(sums, totals, config), sums

  grad_fn = jax.grad(loss_fn, has_aux=True)

  def train_step(state, batch, frozen):
    # A distilling objective reads the frozen teachers; the others their state's teacher.
    guide = frozen if frozen else state.teacher
    with activation_sharding(mesh, config.mesh.rules):
      key = jax.random.fold_in(base_key, state.step)
      totals = objective.counts(batch)
      if M == 1:
        grads, sums = grad_fn(state.params, batch, key, totals, guide)
      else:
        # Micro-batch m takes rows m, m + M, ...: every device holds a share of each.
        spec = NamedSharding(mesh, PartitionSpec(None, BATCH_AXES))
        micro = jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(
                x.reshape(x.shape[0] // M, M, *x.shape[1:]).swapaxes(0, 1), spec), batch)

        def body(carry, xs):
          g_acc, s_acc = carry
          mb, m = xs
          g, s = grad_fn(state.params, mb, jax.random.fold_in(key, m), totals, guide)
          return (jax.tree.map(jnp.add, g_acc, g), jax.tree.map(jnp.add, s_acc, s)), None

        zeros_g = jax.tree.map(jnp.zeros_like, state.params)
        zeros_s = {k: jnp.zeros((), jnp.float32) for k in objective.SUM_KEYS}
        (grads, sums), _ = jax.lax.scan(body, (zeros_g, zeros_s), (micro, jnp.arange(M)))
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      ema = ema_update(state.ema_params, params, ema_decay_at(config, state.step))
      teacher = objective.update_teacher(state.teacher, params, state.step, config, derived)
      metrics = objective.metrics(sums, config)
      if t.inject_nan_at_step >= 0:
        metrics["loss"] = jnp.where(state.step == t.inject_nan_at_step, jnp.nan,
                                    metrics["loss"])
      metrics.update(grad_norm=optax.tree.norm(grads),
                     lr=jnp.asarray(schedule(state.step), jnp.float32))
      new_state = TrainState(step=state.step + 1, params=params, ema_params=ema,
                             opt_state=opt_state, teacher=teacher)
      return new_state, metrics

  frozen_shardings = jax.tree.map(lambda x: x.sharding, frozen)
  jitted = jax.jit(train_step,
                   in_shardings=(state_shardings, _batch_shardings(mesh), frozen_shardings),
                   out_shardings=(state_shardings, replicated(mesh)), donate_argnums=0)

  def step(state, batch):
    return jitted(state, _pick(batch), frozen)
  step.jitted = jitted
  return step


def make_eval_step(config, graphdef, mesh, state_shardings):
  """jitted (params, batch, teacher={}) -> metrics: the training loss and metrics, without
  dropout (`teacher`: the state's, for an objective that keeps one)."""
  objective, divisor = objectives.get(config), batch_divisor(mesh)

  def eval_step(params, batch, teacher):
    with activation_sharding(mesh, config.mesh.rules):
      model = nnx.merge(graphdef, params)
      sums = objective.sums(model, batch, config, teacher, deterministic=True, divisor=divisor,
                            rngs=None)
      return objective.metrics(sums, config)

  jitted = jax.jit(eval_step, in_shardings=(state_shardings.params, _batch_shardings(mesh),
                                            state_shardings.teacher),
                   out_shardings=replicated(mesh))

  def step(params, batch, teacher=None):
    return jitted(params, _pick(batch), {} if teacher is None else teacher)
  step.jitted = jitted
  return step
