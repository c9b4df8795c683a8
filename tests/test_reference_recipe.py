"""configs/gpt_bert_reference_*.py: GPT-BERT's reference training recipe.

The small config, shrunk to tiny shapes, trains six steps on real text (through a batch-size
ramp and three sequence lengths: five batch shapes), and each step's loss equals the
reference's computed here by hand: the masks of its algorithm, its loss from the logits, its
gradient clipping and its LAMB in numpy (tests/reference_recipe.py). No PyTorch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from babylm_jax import config as config_lib
from babylm_jax.config import BOS_ID, NUM_SPECIAL_TOKENS
from babylm_jax.data.batches import BatchSource
from babylm_jax.data.prepare import prepare_data
from babylm_jax.model.gpt_bert import count_params
from babylm_jax.train import optimizer as opt_lib
from babylm_jax.train import sharding
from babylm_jax.train import step as step_lib
from babylm_jax.train.loop import derive_for_corpus
import reference_recipe
from conftest import data_path, load_config

STEPS = 6


def _shrunk(cache):
  c = load_config("gpt_bert_reference_small")
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.data.cache_dir = str(cache)
  m = c.model
  m.vocab_size, m.hidden_size, m.num_layers, m.num_heads = 512, 32, 2, 2
  m.intermediate_size, m.max_position = 48, 64
  # No dropout: the hand computation runs the network deterministically.
  m.dropout = m.head_dropout = 0.0
  c.train.steps = STEPS
  c.train.tokens_per_step = 256
  c.train.seq_lens = (16, 32, 64)
  return c


def _reference_loss(logits, targets, mask, causal, r=15 / 16, z_coef=1e-4):
  """The reference's loss of one batch: r x masked CE mean + (1 - r) x causal CE mean, and the
  z-loss averaged the same way (weights renormalised when a batch has one kind of row)."""
  logits = logits.astype(jnp.float32)
  lse = jax.nn.logsumexp(logits, axis=-1)
  ce = lse - jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  masked = mask & ~causal[:, None]
  causal_t = mask & causal[:, None]
  wm = r * jnp.any(masked)
  wc = (1 - r) * jnp.any(causal_t)
  wm, wc = wm / (wm + wc), wc / (wm + wc)

  def mean(x, sel):
    return jnp.sum(jnp.where(sel, x, 0.0)) / jnp.maximum(jnp.sum(sel), 1)
  return (wm * mean(ce, masked) + wc * mean(ce, causal_t)
          + z_coef * (wm * mean(lse ** 2, masked) + wc * mean(lse ** 2, causal_t)))


def test_reference_configs_parameters_and_switches():
  import importlib
  for name, params, lr, steps in (("gpt_bert_reference_small", 29_892_440, 1.41e-2, 15_821),
                                  ("gpt_bert_reference_base", 119_454_808, 1e-2, 19_776)):
    module = importlib.import_module(f"configs.{name}")
    c = module.get_config()
    assert count_params(c.model) == params and f"{params:,}" in module.__doc__
    d = config_lib.derive(c)
    assert d.total_steps == steps and c.train.lr == lr
    assert [p.tokens_per_step * 4 // c.train.tokens_per_step for p in d.phases] == [
        1, 2, 3, 3, 4, 4]
    assert (c.train.optimizer, c.objective.masking, c.objective.anti_repeat,
            c.objective.z_loss_pooling) == ("gpt_bert_lamb", "ranked", True, "by_kind")
    assert c.model.head_dropout == 0.1 and not c.train.ema_warmup


def test_reference_recipe_per_step_loss_matches_the_hand_computation(tmp_path):
  c = _shrunk(tmp_path)
  prepared = prepare_data(c)
  d = derive_for_corpus(c, prepared.train)
  assert len(d.phases) == 5 and len({p.tokens_per_step for p in d.phases}) == 4
  source = BatchSource(prepared.train, c, d)
  assert d.tokens_before(STEPS) < source.stream_len  # epoch 0: no mask history yet
  mesh = sharding.make_mesh(c, jax.devices()[:1])
  graphdef, state, shardings = step_lib.create_train_state(c, d, mesh)
  train_step = step_lib.make_train_step(c, d, graphdef, mesh, shardings)
  schedule = opt_lib.learning_rate_schedule(c, d)

  params0 = jax.tree.map(np.asarray, jax.device_get(state.params))
  names, values = zip(*reference_recipe.tensors(params0))
  lamb = reference_recipe.Lamb(values, reference_recipe.decayed(names), b1=0.9, b2=0.98,
                               eps=1e-8, wd=0.1)
  ref_params = params0

  def loss_of(params, batch):
    model = step_lib.params_to_model(graphdef, params)
    hidden = model.encode(batch["input_ids"], batch["segment_ids"], batch["is_causal"])
    return _reference_loss(model.head(hidden), batch["targets"], batch["loss_mask"],
                           batch["is_causal"])

  grad_fn = jax.jit(jax.value_and_grad(loss_of))  # compiled once per (rows, length) shape
  V = c.model.vocab_size
  for step in range(STEPS):
    b = source.batch(step, with_spans=True)
    R, T = b["input_ids"].shape
    # The masks: the reference's algorithm on each masked row, from the step's uniforms.
    u = source._row_uniforms(step, T, 0, R)
    is_causal = u[:, -1] < c.objective.causal_fraction
    np.testing.assert_array_equal(b["is_causal"], is_causal)
    starts = b["original"] == BOS_ID  # a row's first token and each document's <s>
    rate = config_lib.mask_rate(c, step, d.total_steps)
    for r in np.flatnonzero(~is_causal):
      eligible = ~starts[r] & (b["original"][r] >= NUM_SPECIAL_TOKENS)
      chosen, inputs = reference_recipe.masked_row(
          u[r, :5 * (T + 1)], b["original"][r], starts[r], eligible, rate,
          np.zeros(T + 1), V)
      np.testing.assert_array_equal(b["loss_mask"][r], chosen[1:])
      np.testing.assert_array_equal(b["input_ids"][r], inputs[:T])

    batch = {k: b[k] for k in step_lib.BATCH_KEYS}
    want, grads = grad_fn(jax.tree.map(jnp.asarray, ref_params), batch)
    state, metrics = train_step(state, sharding.global_batch(batch, mesh))
    got = float(metrics["loss"])
    print(f"step {step}: rows {R} x {T}, loss {got:.6f}, reference {float(want):.6f}")
    assert got == pytest.approx(float(want), abs=1e-5), step
    g = reference_recipe.clip([np.asarray(x, np.float64)
                               for _, x in reference_recipe.tensors(grads)])
    values = lamb.step(g, lr=float(schedule(step)))
    ref_params = jax.tree.map(lambda x: x.astype(np.float32),
                              reference_recipe.from_tensors(values, params0))
  # The parameters agree to 1% of one step's size (lr 1.41e-2): the float32 gradients of the
  # two computations differ in their last bits, and Adam normalises small components.
  final = jax.tree.map(np.asarray, jax.device_get(state.params))
  for (name, x), (_, y) in zip(reference_recipe.tensors(final),
                               reference_recipe.tensors(ref_params)):
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-4, err_msg=name)
