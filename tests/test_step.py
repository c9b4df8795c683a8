"""The objective, the optimizer and the jitted training step on one device.

Batches are built here: random tokens, two documents per row, some padding, 30% of the masked
rows' positions as targets and every next-token position of the causal rows.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from babylm_jax.config import MASK_ID, base_config, derive
from babylm_jax.errors import ConfigError
from babylm_jax.train import loss as loss_lib
from babylm_jax.train import optimizer as opt_lib
from babylm_jax.train import sharding
from babylm_jax.train import step as step_lib
import reference_recipe
from conftest import load_config


def make_batch(seed, B=8, T=32, V=128, causal_rows=2, rate=0.3):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(16, V, (B, T + 1)).astype(np.int32)
  seg = np.zeros((B, T), np.int32)
  for b in range(B):
    cut, end = rng.integers(T // 4, 3 * T // 4), T - rng.integers(0, T // 4)
    seg[b, :cut], seg[b, cut:end] = 1, 2
  is_causal = np.zeros(B, bool)
  is_causal[rng.permutation(B)[:causal_rows]] = True
  # Position k predicts token k + 1 of the same document.
  has_next = np.concatenate([seg[:, 1:] == seg[:, :-1], np.zeros((B, 1), bool)], 1) & (seg > 0)
  chosen = rng.random((B, T)) < rate
  loss_mask = np.where(is_causal[:, None], has_next, has_next & chosen)
  # Masked rows: the token that a target predicts is hidden behind <mask>.
  hide = np.roll(loss_mask, 1, axis=1) & ~is_causal[:, None]
  input_ids = np.where(hide, MASK_ID, tokens[:, :T]).astype(np.int32)
  return dict(input_ids=input_ids, targets=tokens[:, 1:].copy(), loss_mask=loss_mask,
              segment_ids=seg, is_causal=is_causal)


def tiny_config(**train):
  c = base_config()
  m = c.model
  m.vocab_size, m.hidden_size, m.num_layers, m.num_heads = 128, 32, 2, 2
  m.intermediate_size, m.max_position, m.dropout = 48, 64, 0.0
  c.train.steps = 100
  c.train.tokens_per_step = 256
  c.train.seq_lens, c.train.seq_len_fractions = (32,), (1.0,)
  c.train.lr = 3e-3
  c.train.warmup_fraction = c.train.cooldown_fraction = 0.0
  for k, v in train.items():
    c.train[k] = v
  return c


def setup(config, mesh=None):
  derived = derive(config)
  mesh = mesh or sharding.make_mesh(config, jax.devices()[:1])
  graphdef, state, shardings = step_lib.create_train_state(config, derived, mesh)
  train_step = step_lib.make_train_step(config, derived, graphdef, mesh, shardings)
  eval_step = step_lib.make_eval_step(config, graphdef, mesh, shardings)
  return mesh, state, train_step, eval_step


def host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


# ----------------------------------------------------------------------------- objective


def _numpy_loss(logits, targets, mask, causal, r, z, with_ce=True):
  lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
  ce = lse - np.take_along_axis(logits, targets[:, None], -1)[:, 0]
  m, c = mask & ~causal, mask & causal
  parts, weights = [], []
  if m.any():
    parts.append(ce[m].mean()); weights.append(r)
  if c.any():
    parts.append(ce[c].mean()); weights.append(1 - r)
  hybrid = sum(w * p for w, p in zip(weights, parts)) / sum(weights) if with_ce else 0.0
  return hybrid + z * (lse[mask] ** 2).mean()


@pytest.mark.parametrize("kinds", ["both", "masked_only", "causal_only"])
@pytest.mark.parametrize("r", [15 / 16, 1.0, 0.0, 0.5])
def test_hybrid_loss_weights_and_renormalises(kinds, r):
  rng = np.random.default_rng(0)
  N, V = 40, 11
  logits = rng.normal(size=(N, V)).astype(np.float32) * 3
  targets = rng.integers(0, V, N)
  mask = rng.random(N) < 0.7
  causal = {"both": rng.random(N) < 0.3, "masked_only": np.zeros(N, bool),
            "causal_only": np.ones(N, bool)}[kinds]
  sums = loss_lib.target_sums(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask),
                              jnp.asarray(causal))
  got = float(loss_lib.metrics(sums, r, 1e-4)["loss"])
  if (kinds == "masked_only" and r == 0.0) or (kinds == "causal_only" and r == 1.0):
    # The only kind present has weight 0 (pure causal / pure masked training): no CE term.
    want = _numpy_loss(logits, targets, mask, causal, r, 1e-4, with_ce=False)
  else:
    want = _numpy_loss(logits, targets, mask, causal, r, 1e-4)
  assert got == pytest.approx(want, rel=1e-5)


def test_losses_are_float32_from_bfloat16_logits():
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(6, 9)), jnp.bfloat16)
  sums = loss_lib.target_sums(logits, jnp.arange(6), jnp.ones(6, bool), jnp.zeros(6, bool))
  assert all(v.dtype == jnp.float32 for v in sums.values())


def _plain_target_sums(logits_NV, targets_N, weight_N, causal_N):
  """The loss sums written as plain jnp and differentiated by autodiff: what the hand-written
  gradient of loss.target_sums must reproduce."""
  x_NV = logits_NV.astype(jnp.float32)
  lse_N = jax.nn.logsumexp(x_NV, axis=-1)
  ce_N = lse_N - jnp.take_along_axis(x_NV, targets_N[:, None], axis=-1)[:, 0]
  c_N = weight_N * causal_N
  m_N = weight_N - c_N
  return dict(masked_ce=jnp.sum(ce_N * m_N), causal_ce=jnp.sum(ce_N * c_N),
              masked_z=jnp.sum(lse_N ** 2 * m_N), causal_z=jnp.sum(lse_N ** 2 * c_N))


@pytest.mark.parametrize("pooling", ["targets", "by_kind"])
def test_loss_gradient_matches_autodiff_of_the_plain_formulation(pooling):
  """loss.target_sums differentiates by hand (one pass over the logits): the loss and the
  gradient through a head matmul equal autodiff of the plain formulation to float32 rounding,
  with a large z coefficient so that the logsumexp^2 term's gradient counts."""
  rng = np.random.default_rng(3)
  N, D, V = 96, 16, 257
  h = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(V, D)) * 0.5, jnp.float32)
  targets = jnp.asarray(rng.integers(0, V, N))
  weight = jnp.asarray(rng.random(N) < 0.8, jnp.float32)
  causal = jnp.asarray(rng.random(N) < 0.3, jnp.float32)
  totals = dict(masked_targets=jnp.sum(weight * (1 - causal)),
                causal_targets=jnp.sum(weight * causal))

  def loss(sums_fn, h, w):
    sums = sums_fn(h @ w.T, targets, weight, causal)
    return loss_lib.objective(sums, totals, 0.7, 0.05, pooling)

  got, got_g = jax.value_and_grad(lambda h, w: loss(loss_lib.target_sums, h, w), (0, 1))(h, w)
  want, want_g = jax.value_and_grad(lambda h, w: loss(_plain_target_sums, h, w), (0, 1))(h, w)
  assert float(got) == pytest.approx(float(want), rel=1e-6)
  for a, b in zip(got_g, want_g):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(jnp.abs(b).max()))
  # And the gradient is not trivially small: it moves the loss as a finite difference says.
  eps = 1e-2
  step_h = got_g[0] / jnp.linalg.norm(got_g[0])
  fd = (loss(_plain_target_sums, h + eps * step_h, w)
        - loss(_plain_target_sums, h - eps * step_h, w)) / (2 * eps)
  assert float(fd) == pytest.approx(float(jnp.vdot(got_g[0], step_h)), rel=1e-2)


def test_accuracy_counts_a_strict_maximum_and_a_tie_as_wrong():
  logits = jnp.asarray([[0.0, 3.0, 1.0],    # target 1 is the strict maximum: right
                        [2.0, 2.0, 1.0],    # target 1 ties token 0: wrong
                        [5.0, 1.0, 4.0],    # target 2 is second: wrong
                        [1.0, 1.0, 9.0]])   # target 2 is the maximum, causal row: right
  sums = loss_lib.target_sums(logits, jnp.asarray([1, 1, 2, 2]), jnp.ones(4, bool),
                              jnp.asarray([False, False, False, True]))
  assert float(sums["masked_correct"]) == 1.0 and float(sums["causal_correct"]) == 1.0


# ----------------------------------------------------------------------------- optimizer


def test_decay_mask_leaves_out_biases_norms_positions_and_layer_weights():
  _, _, abstract = step_lib.abstract_model(tiny_config())
  mask = opt_lib.decay_mask(abstract)
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  assert flat["embedding/word"] and flat["attention/0/qk/kernel"]
  assert flat["ffn/1/down/kernel"] and flat["head_module/dense/kernel"]
  for name in ("attention/0/qk/bias", "embedding/relative", "embedding/relative_norm_scale",
               "embedding/relative_norm_bias", "layer_weight", "head_module/bias",
               "head_module/dense/bias"):
    assert not flat[name], name
  assert sum(flat.values()) == 1 + 2 * (3 + 2) + 1  # word, per layer 3+2 kernels, head dense


# The leaves (layer numbers as N) that each named config's gpt_bert_lamb steps with plain
# Adam, no decay and no trust ratio: the `no_decay` groups of ltgoslo/gpt-bert
# pretraining/train_10m.py ('bias', 'layer_norm'), ltgoslo/ltg-bert babylm/train/train.py
# (also 'embedding') and ltgoslo/elc-bert train_elc_bert_base.py (also 'prev_layer_weights').
_GPT_BERT_EXEMPT = {"attention/N/qk/bias", "attention/N/vg/bias", "attention/N/out/bias",
                    "embedding/relative_norm_scale", "embedding/relative_norm_bias",
                    "head_module/bias", "head_module/dense/bias"}
_LTG_EXEMPT = {"attention/N/qk/bias", "attention/N/v/bias", "attention/N/out/bias",
               "attention/N/post_norm_scale", "attention/N/post_norm_bias", "embedding/word",
               "embedding/relative", "embedding/relative_norm_scale",
               "embedding/relative_norm_bias", "head_module/bias", "head_module/dense/bias"}


@pytest.mark.parametrize("name, exempt", [
    ("gpt_bert_reference_small", _GPT_BERT_EXEMPT), ("strict_small", _GPT_BERT_EXEMPT),
    ("ltg_bert_small", _LTG_EXEMPT), ("elc_bert_small", _LTG_EXEMPT | {"layer_weight"})])
def test_lamb_exempts_exactly_the_reference_no_decay_groups(name, exempt):
  c = load_config(name)
  _, _, abstract = step_lib.abstract_model(c)
  mask = opt_lib.lamb_trust_mask(tuple(c.train.no_decay))(abstract)
  flat = {re.sub(r"/\d+/", "/N/", "/".join(str(getattr(k, "key", k)) for k in path)): v
          for path, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  assert {n for n, decayed in flat.items() if not decayed} == exempt
  assert c.train.optimizer == "gpt_bert_lamb"


def test_no_decay_is_refused_where_the_optimizer_does_not_read_it():
  c = tiny_config()
  c.train.optimizer, c.train.no_decay = "adamw", ("bias", "norm", "embedding")
  with pytest.raises(ConfigError, match="read by train.optimizer 'gpt_bert_lamb' only"):
    derive(c)
  c.train.optimizer, c.train.no_decay = "gpt_bert_lamb", ("bias", "")
  with pytest.raises(ConfigError, match="non-empty name fragments"):
    derive(c)


@pytest.mark.parametrize("no_decay", [("bias", "norm"), ("bias", "norm", "embedding")])
def test_gpt_bert_lamb_is_the_reference_lamb(no_decay):
  """Three steps on the tiny model's parameters with random gradients equal the reference's
  algorithm applied to its own tensors: the layer-weight matrix as one vector per row (its
  used entries), no decay and no trust ratio exactly for the names holding a `no_decay`
  fragment (GPT-BERT's list, and LTG-BERT's with the embeddings)."""
  c = tiny_config()
  _, _, abstract = step_lib.abstract_model(c)
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda a: rng.normal(0, 0.05, a.shape).astype(np.float32), abstract)
  lw = np.zeros(abstract["layer_weight"].shape, np.float32)  # entries past i + 1 stay 0
  for i in range(lw.shape[0]):
    lw[i, :i + 2] = rng.normal(0, 0.5, i + 2)
  params["layer_weight"] = lw
  grads = [jax.tree.map(lambda a: rng.normal(0, 1e-3, a.shape).astype(np.float32), params)
           for _ in range(3)]
  for g in grads:
    g["layer_weight"] = np.where(lw != 0, g["layer_weight"], 0).astype(np.float32)
  tx = opt_lib.gpt_bert_lamb(0.01, b1=0.9, b2=0.98, eps=1e-8, weight_decay=0.1,
                            no_decay=no_decay)
  state, got = tx.init(params), params
  for g in grads:
    upd, state = tx.update(g, state, got)
    got = optax.apply_updates(got, upd)

  names, values = zip(*reference_recipe.tensors(params))
  decayed = reference_recipe.decayed(names, no_decay)
  assert not decayed[names.index("embedding/relative_norm_scale")]
  assert decayed[names.index("alphas/3")]
  assert decayed[names.index("embedding/relative")] == ("embedding" not in no_decay)
  ref = reference_recipe.Lamb(values, decayed)
  for g in grads:
    want = ref.step([x for _, x in reference_recipe.tensors(g)], lr=0.01)
  for (name, x), y in zip(reference_recipe.tensors(got), want):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=name)


def test_gpt_bert_lamb_moves_a_bias_by_the_lr_where_optax_lamb_scales_it():
  """One step on a norm scale of 0.2s: the reference's plain Adam step moves it by lr (0.01);
  optax's LAMB applies the trust ratio ||p|| / ||u|| = 0.2 and moves it by 0.002."""
  p = {"norm_scale": np.full(8, 0.2, np.float32), "kernel": np.full((8, 8), 0.2, np.float32)}
  g = jax.tree.map(lambda x: np.full_like(x, 0.3), p)
  moved = {}
  for name, tx in (("ref", opt_lib.gpt_bert_lamb(0.01, b1=0.9, b2=0.98, eps=1e-8,
                                                 weight_decay=0.1)),
                   ("optax", optax.lamb(0.01, b1=0.9, b2=0.98, eps=1e-8, weight_decay=0.1,
                                        mask=opt_lib.decay_mask))):
    upd, _ = tx.update(g, tx.init(p), p)
    moved[name] = jax.tree.map(lambda u: float(np.abs(np.asarray(u)).max()), upd)
  assert moved["ref"]["norm_scale"] == pytest.approx(0.01, rel=1e-5)
  assert moved["optax"]["norm_scale"] == pytest.approx(0.002, rel=1e-5)
  # A kernel takes decay and the trust ratio in both: its update's norm becomes lr ||p||.
  assert moved["ref"]["kernel"] == pytest.approx(0.002, rel=1e-5)


def test_schedule_values():
  c = tiny_config(steps=1000, warmup_fraction=0.1, cooldown_fraction=0.2, lr=1.0,
                  min_lr_ratio=0.1)
  d = derive(c)
  lr = opt_lib.learning_rate_schedule(c, d)
  assert float(lr(0)) == 0.0
  assert float(lr(50)) == pytest.approx(0.5)
  assert float(lr(100)) == pytest.approx(1.0)  # warmup end
  assert float(lr(450)) == pytest.approx(0.55, abs=1e-6)  # cosine midpoint of [100, 800)
  assert float(lr(800)) == pytest.approx(0.1)  # cooldown start: the cosine floor
  assert float(lr(900)) == pytest.approx(0.05)
  assert float(lr(1000)) == pytest.approx(0.0)  # end


# ----------------------------------------------------------------------------- the step

# Metrics after one step of tiny_config(dropout 0.1) on make_batch(0), computed once (with the
# hashed dropout masks of gpt_bert.dropout_bits; the counts and lr do not depend on them).
GOLDEN = {
    "loss": 4.985660076141357, "masked_loss": 4.979752540588379,
    "causal_loss": 5.034153938293457, "masked_accuracy": 0.02857142873108387,
    "causal_accuracy": 0.0, "z_loss": 0.0025073953438550234, "masked_targets": 35.0,
    "causal_targets": 52.0, "grad_norm": 3.009063720703125, "lr": 0.003,
}
# The evaluation loss of the parameters after that step.
GOLDEN_EVAL_LOSS_AFTER = 4.486164569854736


@pytest.fixture(scope="module")
def main():
  """One compiled step and a pristine initial state (copied before each use: it is donated)."""
  c = tiny_config(inject_nan_at_step=2)
  c.model.dropout = 0.1
  mesh, state, train_step, eval_step = setup(c)
  return c, mesh, state, train_step, eval_step


def fresh(state):
  return jax.tree.map(jnp.copy, state)


def test_initial_loss_is_near_log_vocab(main):
  c, _, state, _, eval_step = main
  m = host(eval_step(state.params, make_batch(0)))
  for k in ("loss", "masked_loss", "causal_loss"):
    assert abs(m[k] / math.log(c.model.vocab_size) - 1) < 0.05, (k, m[k])


def test_golden_metrics_after_one_step(main):
  _, _, state, train_step, eval_step = main
  state, m = train_step(fresh(state), make_batch(0))
  m = host(m)
  after = float(eval_step(state.params, make_batch(0))["loss"])
  print({k: float(v) for k, v in m.items()}, after)
  assert set(m) == set(GOLDEN)
  for k, v in GOLDEN.items():
    assert m[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
  assert after == pytest.approx(GOLDEN_EVAL_LOSS_AFTER, rel=1e-4)
  assert int(state.step) == 1


def test_ema_dropout_keys_and_nan_hook(main):
  _, _, s0, train_step, _ = main
  init = host(s0.params)
  batch = make_batch(3)
  s1, m1 = train_step(fresh(s0), batch)
  p1, e1 = host(s1.params), host(s1.ema_params)
  # The EMA decay warms up: min(0.999, (1 + step) / (10 + step)) = 0.1 at step 0.
  jax.tree.map(lambda e, a, b: np.testing.assert_allclose(e, 0.1 * a + 0.9 * b, rtol=1e-6,
                                                          atol=1e-7), e1, init, p1)
  # Same seed and step: same dropout masks, same result; the next step draws new ones.
  s1b, m1b = train_step(fresh(s0), batch)
  assert float(m1b["loss"]) == float(m1["loss"])
  s2, m2 = train_step(fresh(s1), batch)
  s2b, m2b = train_step(s1b, batch)
  assert float(m2["loss"]) == float(m2b["loss"])
  # The test hook makes step 2's loss non-finite, and only that one.
  _, m3 = train_step(s2, batch)
  assert math.isfinite(float(m2["loss"])) and not math.isfinite(float(m3["loss"]))


def test_accumulation_and_target_gather_match_the_plain_step(main):
  """Micro-batches (M = 4) and the capacity of the target gather (all positions, a
  too-small buffer that falls back to all positions) give the result of the plain step."""
  _, mesh, s0, _, _ = main
  batch = make_batch(1)
  out = []
  for M, cap in ((1, 0.5), (4, 0.05), (1, 1.0)):
    # Dropout off (micro-batches draw their own masks); a large Adam eps makes the first
    # update linear in the gradient, so parameters compare gradients, not their signs.
    c = tiny_config(micro_batches=M, target_capacity=cap, eps=1e-3)
    d = derive(c)
    graphdef = step_lib.abstract_model(c)[0]
    shardings = step_lib.abstract_train_state(c, d, mesh)[1]
    shardings = jax.tree.map(lambda x: x.sharding, shardings)
    train_step = step_lib.make_train_step(c, d, graphdef, mesh, shardings)
    eval_step = step_lib.make_eval_step(c, graphdef, mesh, shardings)
    e = host(eval_step(s0.params, batch))
    state, m = train_step(fresh(s0), batch)
    out.append((e, host(m), host(state.params)))
  for e, m, p in out[1:]:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), e, out[0][0])
    for k in ("loss", "masked_loss", "causal_loss", "grad_norm", "masked_targets"):
      assert m[k] == pytest.approx(out[0][1][k], rel=1e-5), k
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 p, out[0][2])


def test_tiny_model_overfits_one_batch():
  c = tiny_config(steps=400, lr=1e-2, warmup_fraction=0.02, weight_decay=0.0)
  c.model.hidden_size, c.model.intermediate_size = 64, 128
  batch = make_batch(4)
  _, state, train_step, _ = setup(c)
  losses = []
  for _ in range(400):
    state, m = train_step(state, batch)
    losses.append(float(m["loss"]))
    if losses[-1] < 0.5:
      break
  assert losses[-1] < 0.5, losses[::20]


# ----------------------------------------------------------------------------- FLOP counts


@pytest.mark.parametrize("overrides", [
    {}, dict(attention="ltg"), dict(attention="standard", position="rotary"),
    dict(attention="standard", position="learned_absolute", ffn="gelu", normformer=False)])
def test_matmul_params_are_the_models_kernels_biases_and_tied_embedding(overrides):
  """flops.matmul_params counts exactly the parameters that take part in a matmul per token,
  for each architecture variant; the relative-position term only with relative positions."""
  from flax import nnx
  from babylm_jax.model.gpt_bert import GPTBert
  from babylm_jax.train import flops
  cfg = tiny_config().model
  cfg.update(overrides)
  state = nnx.to_pure_dict(nnx.state(GPTBert(cfg, rngs=nnx.Rngs(0)), nnx.Param))
  flat = jax.tree_util.tree_flatten_with_path(state)[0]
  names = ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in flat]
  in_matmuls = sum(int(np.prod(x.shape)) for n, (_, x) in zip(names, flat)
                   if (n.endswith(("kernel", "bias")) and "norm" not in n)
                   or n == "embedding/word")
  assert flops.matmul_params(cfg) == in_matmuls
  R = 2 * cfg.position_bucket_size - 1 if cfg.attention in ("disentangled", "ltg") else 0
  L, D, T = cfg.num_layers, cfg.hidden_size, 32
  assert flops.flops_per_token(cfg, T) == 6 * in_matmuls + 12 * L * D * (T + R)


def test_chip_peak_is_known_for_accelerators_in_bfloat16_only():
  from types import SimpleNamespace
  from babylm_jax.train import flops
  h200 = SimpleNamespace(platform="gpu", device_kind="NVIDIA H200")
  v5e = SimpleNamespace(platform="tpu", device_kind="TPU v5 lite")
  assert flops.chip_peak_flops(h200, "bfloat16") == 989.4e12
  assert flops.chip_peak_flops(v5e, jnp.bfloat16) == 197.0e12
  assert flops.chip_peak_flops(h200, "float32") is None
  assert flops.chip_peak_flops(SimpleNamespace(platform="gpu", device_kind="Unknown X"),
                               "bfloat16") is None
  assert flops.chip_peak_flops(jax.devices()[0], "bfloat16") is None  # the CPU
  peak, source = flops.peak_flops("float32")
  assert peak > 0 and source.startswith("measured")


def test_ema_decay_warms_up_to_its_cap():
  from babylm_jax.config import base_config
  from babylm_jax.train.optimizer import ema_decay_at
  c = base_config()
  got = [float(ema_decay_at(c, s)) for s in (0, 90, 990, 10**6)]
  np.testing.assert_allclose(got, [0.1, 0.91, 0.991, 0.999], rtol=1e-6)
  c.train.ema_warmup = False
  assert float(ema_decay_at(c, 0)) == pytest.approx(0.999)
