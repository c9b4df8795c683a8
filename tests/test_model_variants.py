"""The architecture switches: each one checked against a hand computation or an invariant that
fails when the switch does nothing or the wrong thing.

model.attention (disentangled | standard), model.position (relative | learned_absolute |
rotary), model.normformer, model.ffn (geglu | gelu), model.head_dropout, model.final_norm,
model.depth_scaling (gpt_bert | boot_bert); their validation,
parameter counts and the document-restarting positions (FLOP counts: test_step.py).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from babylm_jax.config import base_config, derive
from babylm_jax.errors import ConfigError
from babylm_jax.model import positions
from babylm_jax.model.attention import attention_mask
from babylm_jax.model.gpt_bert import GPTBert, count_params
from babylm_jax.model.layers import layer_norm
from tests.test_model import _batch, tiny_cfg

STANDARD_ROTARY = dict(attention="standard", position="rotary")
STANDARD_ABSOLUTE = dict(attention="standard", position="learned_absolute")


def _np(x):
  return np.asarray(x, np.float64)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("overrides,match", [
    (dict(attention="flash"), "model.attention 'flash' is unknown"),
    (dict(position="alibi"), "model.position 'alibi' is unknown"),
    (dict(position="rotary"), "model.position 'rotary' does not work with model.attention "
                              "'disentangled'"),
    (dict(position="learned_absolute"), "does not work with model.attention 'disentangled'"),
    (dict(attention="ltg", position="rotary"), "does not work with model.attention 'ltg'"),
    (dict(attention="standard"), "model.position 'relative' does not work with "
                                 "model.attention 'standard'"),
    (dict(ffn="swiglu"), "model.ffn 'swiglu' is unknown; use geglu or gelu"),
    (dict(head_dropout=1.0), r"model.head_dropout \(1.0\) must lie in \[0, 1\)"),
    (dict(STANDARD_ROTARY, hidden_size=30, num_heads=2), "needs an even head size"),
    (dict(depth_scaling="ltg"), "model.depth_scaling 'ltg' is unknown"),
])
def test_invalid_switches_are_refused_naming_the_field(overrides, match):
  c = base_config()
  c.model.update(overrides)
  with pytest.raises(ConfigError, match=match):
    derive(c)


# ----------------------------------------------------------------------------- counts

D, F, L, V, R, P = 384, 1280, 12, 8192, 63, 512  # strict_small; R buckets, P positions


def _count(**overrides):
  m = base_config().model
  m.update(overrides)
  return count_params(m)


def test_parameter_counts_change_by_exactly_the_switched_parts():
  base = _count()
  # standard attention: qkv (3D^2 + 3D) instead of qk + value-gate (4D^2 + 4D); rotary
  # drops the R bucket vectors and their affine LayerNorm; absolute adds P vectors instead.
  assert base - _count(**STANDARD_ROTARY) == L * (D * D + D) + R * D + 2 * D
  assert _count(**STANDARD_ABSOLUTE) - _count(**STANDARD_ROTARY) == P * D
  # ltg attention: a value projection (D^2 + D) instead of value | gate (2D^2 + 2D), and the
  # affine LayerNorm after the output projection (2D).
  assert base - _count(attention="ltg") == L * (D * D + D - 2 * D)
  assert base - _count(ffn="gelu") == L * D * F  # up-projection to F instead of 2F
  assert _count(normformer=False) == base  # the NormFormer LayerNorms have no parameters
  assert _count(head_dropout=0.1) == base
  assert _count(final_norm=True) - base == 2 * D  # a scale and a bias
  assert _count(final_norm=True, decoder_layers=1) - _count(decoder_layers=1) == 4 * D
  assert _count(depth_scaling="boot_bert") == base


# ----------------------------------------------------------------------------- positions


def test_document_positions_restart_at_each_document():
  seg = np.array([[1, 1, 1, 2, 2, 0, 0], [0, 0, 1, 1, 1, 1, 2], [3, 3, 3, 3, 3, 3, 3]])
  want = np.array([[0, 1, 2, 0, 1, 0, 1], [0, 1, 0, 1, 2, 3, 0], [0, 1, 2, 3, 4, 5, 6]])
  np.testing.assert_array_equal(np.asarray(positions.document_positions(jnp.asarray(seg))),
                                want)


def test_rotary_scores_depend_only_on_the_offset():
  K = 16
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(1, 1, 1, K)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, 1, 1, K)), jnp.float32)

  def score(m, n):
    cq, sq = positions.rotary_angles(jnp.array([[m]]), K)
    ck, sk = positions.rotary_angles(jnp.array([[n]]), K)
    return float(jnp.sum(positions.rotate(q, cq, sq) * positions.rotate(k, ck, sk)))

  # Shifting both positions keeps the score; changing the offset changes it.
  for m, n in ((5, 2), (2, 5), (7, 7)):
    for shift in (1, 13, 200):
      assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-4)
  assert abs(score(5, 2) - score(5, 3)) > 1e-3
  # A rotation: norms are kept, position 0 is the identity.
  c, s = positions.rotary_angles(jnp.array([[37]]), K)
  np.testing.assert_allclose(jnp.linalg.norm(positions.rotate(q, c, s)), jnp.linalg.norm(q),
                             rtol=1e-6)
  c, s = positions.rotary_angles(jnp.array([[0]]), K)
  np.testing.assert_array_equal(positions.rotate(q, c, s), q)


def _complex_rope(x_TK, pos_T):
  """RoPE written independently: feature pairs (i, i + K/2) as complex numbers."""
  K = x_TK.shape[-1]
  z = x_TK[:, :K // 2] + 1j * x_TK[:, K // 2:]
  theta = pos_T[:, None] * 10_000.0 ** (-np.arange(0, K, 2) / K)[None]
  z = z * np.exp(1j * theta)
  return np.concatenate([z.real, z.imag], -1)


def _doc_positions(seg_T):
  out, start = np.zeros(len(seg_T), int), 0
  for t in range(len(seg_T)):
    if t > 0 and seg_T[t] != seg_T[t - 1]:
      start = t
    out[t] = t - start
  return out


def _hand_standard_attention(attn, x_BTD, seg_BT, causal_B, cfg, rotary, normformer):
  """Textbook attention per row and head in float64 numpy."""
  B, T, Dm = x_BTD.shape
  H = cfg.num_heads
  K = Dm // H
  h = _np(layer_norm(x_BTD, cfg.layer_norm_eps))
  W, b = _np(attn.qkv.kernel[...]), _np(attn.qkv.bias[...])
  Wo, bo = _np(attn.out.kernel[...]), _np(attn.out.bias[...])
  out = np.zeros((B, T, Dm))
  for r in range(B):
    q, k, v = np.split(h[r] @ W + b, 3, -1)
    ctx = np.zeros((T, Dm))
    pos = _doc_positions(seg_BT[r])
    for hd in range(H):
      qh, kh, vh = (a[:, hd * K:(hd + 1) * K] for a in (q, k, v))
      if rotary:
        qh, kh = _complex_rope(qh, pos), _complex_rope(kh, pos)
      s = qh @ kh.T / math.sqrt(K)
      allowed = (seg_BT[r][:, None] == seg_BT[r][None]) & (seg_BT[r][None] > 0)
      if causal_B[r]:
        allowed &= np.tril(np.ones((T, T), bool))
      s = np.where(allowed, s, -1e30)
      p = np.exp(s - s.max(-1, keepdims=True))
      ctx[:, hd * K:(hd + 1) * K] = (p / p.sum(-1, keepdims=True)) @ vh
    if normformer:
      ctx = (ctx - ctx.mean(-1, keepdims=True)) / np.sqrt(ctx.var(-1, keepdims=True)
                                                          + cfg.layer_norm_eps)
    out[r] = ctx @ Wo + bo
  return out


@pytest.mark.parametrize("rotary", [True, False])
@pytest.mark.parametrize("normformer", [True, False])
def test_standard_attention_matches_a_hand_computation(rotary, normformer):
  overrides = STANDARD_ROTARY if rotary else STANDARD_ABSOLUTE
  cfg = tiny_cfg(normformer=normformer, **overrides)
  model = GPTBert(cfg, rngs=nnx.Rngs(1))
  ids, seg = _batch(np.random.default_rng(1))
  causal = np.array([True, False, False])
  x, pos = model.embedding(jnp.asarray(ids), jnp.asarray(seg), True, None)
  got = model.attention[0](x, pos, attention_mask(jnp.asarray(seg), jnp.asarray(causal)),
                           True, None)
  want = _hand_standard_attention(model.attention[0], x, seg, causal, cfg, rotary, normformer)
  valid = seg > 0
  np.testing.assert_allclose(_np(got)[valid], want[valid], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("ffn", ["geglu", "gelu"])
@pytest.mark.parametrize("normformer", [True, False])
def test_feed_forward_matches_a_hand_computation(ffn, normformer):
  cfg = tiny_cfg(ffn=ffn, normformer=normformer)
  model = GPTBert(cfg, rngs=nnx.Rngs(2))
  block = model.ffn[1]
  x = np.random.default_rng(2).normal(size=(2, 5, cfg.hidden_size)).astype(np.float32)
  up, down = _np(block.up.kernel[...]), _np(block.down.kernel[...])
  assert up.shape == (cfg.hidden_size, (2 if ffn == "geglu" else 1) * cfg.intermediate_size)
  h = _np(layer_norm(jnp.asarray(x), cfg.layer_norm_eps)) @ up
  erf = np.vectorize(math.erf)
  if ffn == "geglu":
    value, gate = np.split(h, 2, -1)
    h = value * 0.5 * gate * (1 + np.tanh(math.sqrt(2 / math.pi)
                                          * (gate + 0.044715 * gate ** 3)))
  else:
    h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
  if normformer:
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True)
                                                  + cfg.layer_norm_eps)
  np.testing.assert_allclose(_np(block(jnp.asarray(x), True, None)), h @ down,
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scaling", ["gpt_bert", "boot_bert"])
def test_depth_scaling_shrinks_the_kernels_bootbert_or_gpt_bert_shrinks(scaling):
  """Layer l's feed-forward kernels start at std sqrt(2 / 5D) x sqrt(1 / (2 (l + 1))): the
  down projection always, the up projection only with 'gpt_bert'; BootBERT shrinks the ltg
  attention's output LayerNorm gain by the same factor instead."""
  cfg = tiny_cfg(num_layers=3, depth_scaling=scaling, hidden_size=256, intermediate_size=256,
                 attention="ltg")
  model = GPTBert(cfg, rngs=nnx.Rngs(0))
  std = math.sqrt(2.0 / (5.0 * cfg.hidden_size))
  for l, block in enumerate(model.ffn):
    depth = math.sqrt(1.0 / (2.0 * (l + 1)))
    # A normal truncated at 2 std has 0.88 of the untruncated std.
    up, down = (float(np.std(k[...])) / (0.8796 * std) for k in (block.up.kernel,
                                                                  block.down.kernel))
    assert down == pytest.approx(depth, rel=0.03), l
    assert up == pytest.approx(depth if scaling == "gpt_bert" else 1.0, rel=0.03), l
    gain = model.attention[l].post_norm_scale[...]
    np.testing.assert_allclose(gain, depth if scaling == "boot_bert" else 1.0, rtol=1e-6)


def test_final_norm_ends_the_encoder_and_the_head_reads_it_unnormalised():
  """With model.final_norm the encoder's states are an affine LayerNorm of the residual
  stream, and the head's first step is its dense layer (no LayerNorm of its own)."""
  cfg = tiny_cfg(final_norm=True, layer_weighting="residual")
  plain = GPTBert(tiny_cfg(layer_weighting="residual"), rngs=nnx.Rngs(3))
  model = GPTBert(cfg, rngs=nnx.Rngs(3))
  rng = np.random.default_rng(3)
  scale, bias = rng.normal(1.0, 0.3, cfg.hidden_size), rng.normal(0.0, 0.3, cfg.hidden_size)
  model.final_norm.scale[...] = jnp.asarray(scale, jnp.float32)
  model.final_norm.bias[...] = jnp.asarray(bias, jnp.float32)
  ids, seg = _batch(rng)
  bidi = jnp.zeros((len(ids),), bool)
  raw = _np(plain.encode(jnp.asarray(ids), jnp.asarray(seg), bidi))  # the same init
  eps = cfg.layer_norm_eps
  want = (raw - raw.mean(-1, keepdims=True)) / np.sqrt(raw.var(-1, keepdims=True) + eps)
  want = want * scale + bias
  got = _np(model.encode(jnp.asarray(ids), jnp.asarray(seg), bidi))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  head = model.head_module
  h = got @ _np(head.dense.kernel[...]) + _np(head.dense.bias[...])
  h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
  h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + eps)
  logits = h @ _np(model.embedding.word[...]).T + _np(head.bias[...])
  np.testing.assert_allclose(_np(model(jnp.asarray(ids), jnp.asarray(seg), bidi)), logits,
                             rtol=1e-4, atol=1e-4)


def test_absolute_embedding_adds_each_documents_positions():
  cfg = tiny_cfg(**STANDARD_ABSOLUTE)
  model = GPTBert(cfg, rngs=nnx.Rngs(3))
  ids, seg = _batch(np.random.default_rng(3))
  x, pos = model.embedding(jnp.asarray(ids), jnp.asarray(seg), True, None)
  assert pos is None
  word, table = _np(model.embedding.word[...]), _np(model.embedding.absolute[...])
  for r in range(ids.shape[0]):
    e = word[ids[r]] + table[_doc_positions(seg[r])]
    e = (e - e.mean(-1, keepdims=True)) / np.sqrt(e.var(-1, keepdims=True)
                                                  + cfg.layer_norm_eps)
    np.testing.assert_allclose(_np(x[r]), e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("overrides", [STANDARD_ROTARY, STANDARD_ABSOLUTE, {}])
def test_a_document_reads_the_same_wherever_it_sits_in_a_row(overrides):
  """Positions restart at each document: a document alone at the start of a row and the
  same document after another one get the same logits."""
  model = GPTBert(tiny_cfg(**overrides), rngs=nnx.Rngs(4))
  rng = np.random.default_rng(4)
  doc, other = rng.integers(16, 97, 11), rng.integers(16, 97, 7)
  ids = np.zeros((2, 24), np.int32)
  seg = np.zeros((2, 24), np.int32)
  ids[0, :11], seg[0, :11] = doc, 1
  ids[1, :7], seg[1, :7] = other, 1
  ids[1, 7:18], seg[1, 7:18] = doc, 2
  for causal in (True, False):
    out = _np(model(ids, seg, np.array([causal] * 2)))
    np.testing.assert_allclose(out[1, 7:18], out[0, :11], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("overrides", [STANDARD_ROTARY, STANDARD_ABSOLUTE])
def test_standard_attention_reads_word_order_only_through_its_positions(overrides,
                                                                         monkeypatch):
  """Bidirectional attention without positions is permutation-equivariant: reversing a
  document reverses its outputs. With rotary or learned absolute positions it does not."""
  cfg = tiny_cfg(**overrides)
  model = GPTBert(cfg, rngs=nnx.Rngs(5))
  ids = np.random.default_rng(5).integers(16, 97, (1, 12)).astype(np.int32)
  seg = np.ones_like(ids)
  masked = np.array([False])

  def reversal_gap(m):
    fwd = _np(m.encode(ids, seg, masked))
    back = _np(m.encode(ids[:, ::-1].copy(), seg, masked))
    return np.abs(fwd[:, ::-1] - back).max()

  assert reversal_gap(model) > 1e-3
  if cfg.position == "learned_absolute":  # the same model with its positions zeroed
    model.embedding.absolute[...] = jnp.zeros_like(model.embedding.absolute[...])
  else:  # every position's angles 0: no rotation
    angles = positions.rotary_angles
    monkeypatch.setattr(positions, "rotary_angles",
                        lambda pos, k: angles(jnp.zeros_like(pos), k))
  assert reversal_gap(model) < 1e-5


# ----------------------------------------------------------------------------- head dropout


def test_head_dropout_drops_the_features_before_the_vocabulary_projection():
  """The dropped features are recovered from the logits (V > D, so the tied projection is
  invertible): each is 0 or the undropped feature / (1 - rate), about `rate` of them 0."""
  rate = 0.4
  cfg = tiny_cfg(head_dropout=rate, hidden_size=16, num_heads=2)
  model = GPTBert(cfg, rngs=nnx.Rngs(6))
  hidden = jnp.asarray(np.random.default_rng(6).normal(size=(40, 16)), jnp.float32)
  plain = model.head(hidden)
  np.testing.assert_array_equal(plain, model.head(hidden))  # off in evaluation
  dropped = model.head(hidden, deterministic=False, rngs=nnx.Rngs(dropout=1))
  word, bias = _np(model.embedding.word[...]), _np(model.head_module.bias[...])
  feats = np.linalg.lstsq(word, (_np(dropped) - bias).T, rcond=None)[0].T
  full = np.linalg.lstsq(word, (_np(plain) - bias).T, rcond=None)[0].T
  zero = np.abs(feats) < 1e-4
  np.testing.assert_allclose(feats[~zero], full[~zero] / (1 - rate), rtol=1e-3, atol=1e-4)
  assert abs(zero.mean() - rate) < 0.06
  # A gathered subset of positions draws the masks those positions have in the full batch.
  rows = jnp.array([3, 17, 29])
  sub = model.head(hidden[rows], deterministic=False, rngs=nnx.Rngs(dropout=1), rows_x=rows)
  np.testing.assert_allclose(sub, dropped[rows], rtol=1e-6, atol=1e-6)


def test_head_dropout_in_the_step_is_the_same_gathered_or_not():
  """With head dropout on, the step's loss sums are the same through the target gather
  (capacity 0.5) as through the every-position projection (capacity 1.0)."""
  from babylm_jax.train.objectives import hybrid
  from tests.test_step import make_batch, tiny_config
  batch = {k: jnp.asarray(v) for k, v in make_batch(0).items()}
  sums = {}
  for rate, cap in ((0.3, 0.5), (0.3, 1.0), (0.0, 0.5)):
    c = tiny_config(target_capacity=cap)
    c.model.head_dropout = rate
    graphdef, params = nnx.split(GPTBert(c.model, rngs=nnx.Rngs(0)))
    sums[rate, cap] = jax.device_get(jax.jit(lambda p, b, c=c: hybrid.sums(
        nnx.merge(graphdef, p), b, c, {}, deterministic=False, rngs=nnx.Rngs(dropout=3),
        divisor=1))(params, batch))
  for k, v in sums[0.3, 0.5].items():
    assert v == pytest.approx(sums[0.3, 1.0][k], rel=1e-5), k
  assert abs(sums[0.3, 0.5]["masked_ce"] - sums[0.0, 0.5]["masked_ce"]) > 1e-2


# ----------------------------------------------------------------------------- README


def test_readme_variants_table_states_each_rows_parameter_count():
  """The README's Variants table: each row's switches, built at the strict_small size, have
  the parameters the row states."""
  from conftest import ROOT, load_config
  lines = (ROOT / "README.md").read_text().splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("| variant | attention"))
  end = next(i for i, line in enumerate(lines[start:] + [""]) if not line.startswith("|"))
  header, _, *rows = [[c.strip() for c in line.strip("|").split("|")]
                      for line in lines[start:start + end]]
  col = {name: i for i, name in enumerate(header)}
  values = {"norms": {"NormFormer": True, "pre-LN": False},
            "positions": {"relative": "relative", "rotary": "rotary",
                          "learned absolute": "learned_absolute"},
            "FFN": {"GEGLU": "geglu", "GELU": "gelu"}}
  assert len(rows) >= 9
  for row in rows:
    m = load_config("strict_small").model
    m.update(attention=row[col["attention"]], layer_weighting=row[col["layer weighting"]],
             position=values["positions"][row[col["positions"]]],
             normformer=values["norms"][row[col["norms"]]], ffn=values["FFN"][row[col["FFN"]]])
    assert count_params(m) == int(row[col["parameters"]].replace(",", "")), row
