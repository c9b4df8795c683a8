"""The objectives (objective.kind): their batches from real text, their losses, their steps,
BootBERT's decoder and teacher, the named configs of the seed's systems, and the eval backends
each one allows.
"""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from babylm_jax import config as config_lib
from babylm_jax.config import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, base_config, derive
from babylm_jax.data.batches import BatchSource
from babylm_jax.data.prepare import prepare_data
from babylm_jax.errors import ConfigError
from babylm_jax.model.gpt_bert import GPTBert, count_params
from babylm_jax.train import loss as loss_lib
from babylm_jax.train import objectives
from babylm_jax.train import optimizer as opt_lib
from babylm_jax.train.objectives import bootstrap
from conftest import ROOT, data_path, load_config
from tests.test_step import fresh, host, make_batch, setup, tiny_config

KINDS = ("hybrid", "masked", "causal", "bootstrap")


def objective_config(kind, **train):
  """tiny_config with `kind`; bootstrap gets a one-layer decoder."""
  c = tiny_config(**train)
  c.objective.kind = kind
  if kind == "bootstrap":
    c.model.decoder_layers = 1
  return c


def objective_batch(seed, kind, B=8, T=32, V=128):
  """make_batch's rows, shaped as `kind` reads them: masked and bootstrap rows predict the
  hidden token at its own position (bootstrap: always a <mask> hole), causal rows only."""
  b = make_batch(seed, B=B, T=T, V=V, causal_rows={"hybrid": 2, "causal": B}.get(kind, 0))
  if kind in ("hybrid", "causal"):
    return b
  rng = np.random.default_rng(seed + 1000)
  tokens = np.where(b["segment_ids"] > 0, rng.integers(16, V, (B, T)), 3).astype(np.int32)
  chosen = (b["segment_ids"] > 0) & (rng.random((B, T)) < 0.3)
  chosen[:, 0] = False
  replace = MASK_ID if kind == "bootstrap" else np.where(rng.random((B, T)) < 0.8, MASK_ID,
                                                          tokens)
  return dict(input_ids=np.where(chosen, replace, tokens).astype(np.int32), targets=tokens,
              loss_mask=chosen, segment_ids=b["segment_ids"], is_causal=np.zeros(B, bool))


# ----------------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def store(tmp_path_factory):
  c = base_config()
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.data.cache_dir = str(tmp_path_factory.mktemp("cache"))
  c.model.vocab_size = 512
  return c, prepare_data(c).train


def _source(store, kind, **objective):
  c, train = store
  c = c.copy_and_resolve_references()
  c.objective.kind = kind
  c.model.decoder_layers = 1 if kind == "bootstrap" else 0
  c.objective.update(objective)
  c.train.tokens_per_step, c.train.steps = 64 * 128, 100
  c.train.seq_lens, c.train.seq_len_fractions = (128,), (1.0,)
  return BatchSource(train, c, derive(c))


def test_masked_rows_predict_each_chosen_token_at_its_own_position(store):
  b = _source(store, "masked").batch(3, with_spans=True)
  T = b["input_ids"].shape[1]
  original, chosen = b["original"][:, :T], b["chosen"][:, :T]
  assert not b["is_causal"].any()
  assert (b["targets"] == original).all() and (b["loss_mask"] == chosen).all()
  assert not chosen[original < NUM_SPECIAL_TOKENS].any()  # never <s> or another special
  unchanged = ~chosen
  assert (b["input_ids"][unchanged] == original[unchanged]).all()
  dec = b["decision"][:, :T][chosen]
  got = b["input_ids"][chosen]
  assert (got[dec == 0] == MASK_ID).all() and (got[dec == 2] == original[chosen][dec == 2]).all()
  assert (got[dec == 1] >= NUM_SPECIAL_TOKENS).all()


def test_token_level_dynamic_masking_at_15_percent(store):
  """max_span 1 (RoBERTa): each eligible token chosen alone with probability 0.15, 80/10/10,
  drawn anew at every step (the same rows read at two steps are masked differently)."""
  source = _source(store, "masked", max_span=1, mask_rate_start=0.15, mask_rate_end=0.15)
  chosen, eligible, dec = [], [], []
  for step in range(6):
    b = source.batch(step, with_spans=True)
    T = b["input_ids"].shape[1]
    chosen.append(b["chosen"][:, :T])
    eligible.append((b["original"][:, :T] >= NUM_SPECIAL_TOKENS)
                    & (b["segment_ids"] == np.roll(b["segment_ids"], 1, 1)))
    dec.append(b["decision"][:, :T][b["chosen"][:, :T]])
    assert (b["span_lengths"][b["span_starts"]] == 1).all()
  chosen, eligible, dec = map(np.concatenate, (chosen, eligible, dec))
  rate = chosen.sum() / eligible.sum()
  n = eligible.sum()
  assert abs(rate - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n), rate
  shares = np.bincount(dec, minlength=3) / len(dec)
  np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.02)
  # Dynamic: a row's mask is drawn from (seed, step), not from the row.
  again = BatchSource(source.store, source.config, source.derived)
  s0, s1 = source.row_starts(0)[:4], again.row_starts(0)[:4]
  assert (s0 == s1).all()
  assert (again.batch(0)["loss_mask"] == source.batch(0)["loss_mask"]).all()


def test_causal_rows_score_every_next_token_of_the_document(store):
  b = _source(store, "causal").batch(2, with_spans=True)
  T = b["input_ids"].shape[1]
  assert b["is_causal"].all() and not b["chosen"].any()
  assert (b["input_ids"] == b["original"][:, :T]).all()
  assert (b["targets"] == b["original"][:, 1:]).all()
  assert (b["loss_mask"] == (b["original"][:, 1:] != BOS_ID)).all()


def test_bootstrap_rows_are_holes_at_every_chosen_token(store):
  b = _source(store, "bootstrap").batch(5, with_spans=True)
  T = b["input_ids"].shape[1]
  chosen = b["chosen"][:, :T]
  assert chosen.any() and (b["loss_mask"] == chosen).all()
  assert (b["input_ids"] == np.where(chosen, MASK_ID, b["original"][:, :T])).all()
  assert (b["targets"] == b["original"][:, :T]).all()


# ----------------------------------------------------------------------------- losses


def test_z_loss_pooled_by_kind_as_the_reference():
  rng = np.random.default_rng(0)
  N, V, r = 50, 13, 15 / 16
  logits = rng.normal(size=(N, V)).astype(np.float32) * 3
  targets, mask = rng.integers(0, V, N), rng.random(N) < 0.8
  causal = rng.random(N) < 0.4
  sums = loss_lib.target_sums(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask),
                              jnp.asarray(causal))
  lse2 = np.square(np.log(np.exp(logits).sum(-1)))
  pooled = lse2[mask].mean()
  by_kind = r * lse2[mask & ~causal].mean() + (1 - r) * lse2[mask & causal].mean()
  assert abs(pooled - by_kind) > 0.1  # the two poolings differ on this batch
  for pooling, want in (("targets", pooled), ("by_kind", by_kind)):
    got = loss_lib.metrics(sums, r, 1.0, pooling)
    assert float(got["z_loss"]) == pytest.approx(want, rel=1e-5)
    ce_only = loss_lib.metrics(sums, r, 0.0, pooling)["loss"]
    assert float(got["loss"]) == pytest.approx(float(ce_only) + want, rel=1e-5)


def test_weight_decay_rises_on_a_cosine():
  c = tiny_config(steps=1000, weight_decay=0.02, weight_decay_end=0.2)
  wd = opt_lib.weight_decay_schedule(c, derive(c))
  np.testing.assert_allclose([float(wd(s)) for s in (0, 500, 1000, 2000)],
                             [0.02, 0.11, 0.2, 0.2], rtol=1e-6)
  assert opt_lib.weight_decay_schedule(tiny_config(), derive(tiny_config())) == 0.1


# ----------------------------------------------------------------------------- steps


@pytest.mark.parametrize("kind", ["masked", "causal", "bootstrap"])
def test_one_step_per_objective(kind):
  """Initial loss near ln V for the token objectives; the step changes the parameters; only
  the metrics of the kinds present are non-zero."""
  c = objective_config(kind, eps=1e-3)
  c.model.dropout = 0.1
  _, state, train_step, eval_step = setup(c)
  batch = objective_batch(0, kind)
  before = host(eval_step(state.params, batch, state.teacher))
  if kind != "bootstrap":
    assert abs(before["loss"] / math.log(c.model.vocab_size) - 1) < 0.05, before
  state, m = train_step(fresh(state), batch)
  m = host(m)
  assert math.isfinite(float(m["loss"])) and float(m["grad_norm"]) > 0
  present = "causal" if kind == "causal" else "masked"
  absent = "masked" if kind == "causal" else "causal"
  assert m[f"{present}_targets"] == batch["loss_mask"].sum() and m[f"{absent}_targets"] == 0
  if kind == "bootstrap":
    assert m["latent_loss"] > 0
    want = 0.1 * m["masked_loss"] + m["latent_loss"] + m["z_loss"]
    assert float(m["loss"]) == pytest.approx(float(want), rel=1e-5)


def test_bootstrap_teacher_is_an_ema_of_the_encoder_outside_the_optimizer():
  c = objective_config("bootstrap", steps=10)
  _, s0, train_step, _ = setup(c)
  enc = {k: s0.params[k] for k in s0.teacher}
  assert set(s0.teacher) == {"embedding", "attention", "ffn", "layer_weight"}
  jax.tree.map(lambda t, p: np.testing.assert_array_equal(t, p), host(s0.teacher), host(enc))
  # The optimizer holds moments of the parameters only, not of the teacher.
  n_params = len(jax.tree.leaves(s0.params))
  assert len([x for x in jax.tree.leaves(s0.opt_state) if x.ndim > 0]) == 2 * n_params
  init_teacher = host(s0.teacher)
  s1, _ = train_step(fresh(s0), objective_batch(1, "bootstrap"))
  d = 0.996 + (1.0 - 0.996) * 1 / 10
  new = host({k: s1.params[k] for k in s1.teacher})
  jax.tree.map(lambda t, a, b: np.testing.assert_allclose(t, d * a + (1 - d) * b, rtol=1e-6,
                                                          atol=1e-7),
               host(s1.teacher), init_teacher, new)


def test_bootstrap_loss_matches_a_numpy_computation():
  """BootBERT's loss from the model's outputs, in numpy: 0.1 x the mean cross-entropy at the
  holes + smooth-L1 (beta 1, mean over holes and features) between the latent head's guess
  and the teacher's states LayerNorm-ed with eps 1e-5 (F.layer_norm's default, not
  model.layer_norm_eps). The teacher's final LayerNorm is shrunk so that its states' variance
  is near eps and the wrong eps would show."""
  c = objective_config("bootstrap")
  c.objective.z_loss = 0.0
  c.model.final_norm, c.model.layer_norm_eps = True, 1e-7
  model = GPTBert(c.model, rngs=nnx.Rngs(5))
  teacher = bootstrap.init_teacher(nnx.to_pure_dict(nnx.state(model)))
  rng = np.random.default_rng(5)
  teacher["final_norm"]["scale"] = jnp.asarray(rng.uniform(0.001, 0.005, c.model.hidden_size),
                                               jnp.float32)
  b = objective_batch(5, "bootstrap")
  sums = bootstrap.sums(model, {k: jnp.asarray(v) for k, v in b.items()}, c, teacher,
                        deterministic=True, rngs=None, divisor=1)
  m = {k: float(v) for k, v in bootstrap.metrics(sums, c).items()}

  ids, seg = jnp.asarray(b["input_ids"]), jnp.asarray(b["segment_ids"])
  bidi = jnp.zeros((len(ids),), bool)
  holes = b["loss_mask"]
  h = model.states(ids, seg, bidi)[holes]
  logits = np.asarray(model.head(h), np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  ce = -logp[np.arange(len(logp)), b["targets"][holes]].mean()
  graphdef, state = nnx.split(model)
  taught = nnx.merge(graphdef, {**nnx.to_pure_dict(state), **teacher}).encode(
      jnp.asarray(b["targets"]), seg, bidi)
  t = np.asarray(taught, np.float64)[holes]
  goal = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-5)
  diff = np.abs(np.asarray(model.decoder.latent_head(h), np.float64) - goal)
  latent = np.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5).mean()
  assert m["masked_loss"] == pytest.approx(ce, rel=1e-5)
  assert m["latent_loss"] == pytest.approx(latent, rel=1e-4)
  assert m["loss"] == pytest.approx(0.1 * ce + latent, rel=1e-4)
  wrong_eps = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-7)
  assert np.abs(wrong_eps - goal).max() > 0.1  # the test would see the model's eps


@pytest.mark.parametrize("kind", ["masked", "causal", "bootstrap"])
def test_micro_batches_and_target_gather_match_the_plain_step(kind):
  """As test_step's test for hybrid: M = 4 micro-batches with a gather buffer too small for
  their targets (so every position is projected) give the plain step's (gathered) loss,
  gradient norm, parameters and teacher."""
  out = []
  for M, cap in ((1, 0.5), (4, 0.05)):
    c = objective_config(kind, micro_batches=M, target_capacity=cap, eps=1e-3)
    _, state, train_step, eval_step = setup(c)
    batch = objective_batch(2, kind)
    e = host(eval_step(state.params, batch, state.teacher))
    state, m = train_step(state, batch)
    out.append((e, host(m), host(state.params), host(state.teacher)))
  for e, m, p, t in out[1:]:
    for k in ("loss", "masked_loss", "causal_loss"):
      assert e[k] == pytest.approx(out[0][0][k], rel=1e-5), k
    for k in ("loss", "masked_loss", "causal_loss", "grad_norm"):
      assert m[k] == pytest.approx(out[0][1][k], rel=1e-5), k
    for tree, ref in ((p, out[0][2]), (t, out[0][3])):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                   tree, ref)


def test_tiny_masked_model_overfits_one_batch():
  c = objective_config("masked", steps=300, lr=1e-2, warmup_fraction=0.02, weight_decay=0.0)
  c.model.hidden_size, c.model.intermediate_size = 64, 128
  batch = objective_batch(4, "masked")
  _, state, train_step, _ = setup(c)
  for _ in range(300):
    state, m = train_step(state, batch)
    if float(m["loss"]) < 0.5:
      break
  assert float(m["loss"]) < 0.5


# ----------------------------------------------------------------------------- the decoder


def test_the_encoder_never_sees_a_hole_and_the_decoder_fills_it():
  """Changing the <mask> embedding row changes no encoder state at a visible position (the
  encoder attends to no hole) but changes the decoder's states; without a decoder, <mask> is
  an ordinary visible token."""
  c = objective_config("bootstrap").model
  model = GPTBert(c, rngs=nnx.Rngs(0))
  b = objective_batch(3, "bootstrap")
  ids, seg = jnp.asarray(b["input_ids"]), jnp.asarray(b["segment_ids"])
  bidi = jnp.zeros((len(ids),), bool)
  holes = b["input_ids"] == MASK_ID
  visible = ~holes & (b["segment_ids"] > 0)
  enc, states = model.encode(ids, seg, bidi), model.states(ids, seg, bidi)
  word = model.embedding.word[...]
  model.embedding.word[...] = word.at[MASK_ID].add(1.0)
  enc2, states2 = model.encode(ids, seg, bidi), model.states(ids, seg, bidi)
  np.testing.assert_array_equal(np.asarray(enc)[visible], np.asarray(enc2)[visible])
  np.testing.assert_array_equal(np.asarray(states)[holes], np.asarray(states2)[holes])
  # The decoder state at a hole starts from the mask embedding, not the hole's own token:
  # changing the mask embedding changes it.
  model.decoder.mask[...] = model.decoder.mask[...] + 1.0
  states3 = model.states(ids, seg, bidi)
  assert not np.allclose(np.asarray(states3)[holes], np.asarray(states)[holes])
  plain = GPTBert(objective_config("masked").model, rngs=nnx.Rngs(0))
  e1 = plain.encode(ids, seg, bidi)
  plain.embedding.word[...] = plain.embedding.word[...].at[MASK_ID].add(1.0)
  assert not np.allclose(np.asarray(plain.encode(ids, seg, bidi))[visible],
                         np.asarray(e1)[visible])


# ----------------------------------------------------------------------------- configs


NAMED = {"ltg_bert_small": ("masked", 27_741_952), "elc_bert_small": ("masked", 23_799_696),
         "roberta_small": ("masked", 29_469_056), "gpt_small": ("causal", 29_272_448),
         "boot_bert_small": ("bootstrap", 30_395_776),
         "gpt_bert_reference_small": ("hybrid", 29_892_440)}


@pytest.mark.parametrize("name", list(NAMED))
def test_named_configs_build_with_the_counts_their_docstrings_state(name):
  import importlib
  module = importlib.import_module(f"configs.{name}")
  c = module.get_config()
  kind, count = NAMED[name]
  derive(c)
  assert c.objective.kind == kind and count_params(c.model) == count
  assert f"{count:,}" in module.__doc__
  assert set(c.eval.backend.split(",")) <= set(objectives.get(c).BACKENDS)
  if kind == "bootstrap":
    encoder = c.model.copy_and_resolve_references()
    encoder.decoder_layers = 0
    # The reference's Bert has 30,395,776 trainable parameters (its teacher aside).
    assert count_params(encoder) == 23_011_840 and "23,011,840" in module.__doc__


def test_readme_table_of_the_seeds_systems_matches_the_configs():
  """Each row of the README's table names a config whose objective, eval backends and
  parameter count (in millions, one decimal) are the row's."""
  import importlib
  lines = (ROOT / "README.md").read_text().splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("| config | objective"))
  end = next(i for i, line in enumerate(lines[start:] + [""]) if not line.startswith("|"))
  header, _, *rows = [[c.strip() for c in line.strip("|").split("|")]
                      for line in lines[start:start + end]]
  col = {name: i for i, name in enumerate(header)}
  assert {r[0].strip("`") for r in rows} == set(NAMED) | {"strict_small"}
  for row in rows:
    c = importlib.import_module(f"configs.{row[0].strip('`')}").get_config()
    assert row[col["objective"]].split(",")[0] == c.objective.kind, row
    assert row[col["eval backends"]].split(" (")[0] == ", ".join(objectives.get(c).BACKENDS)
    encoder = c.model.copy_and_resolve_references()
    encoder.decoder_layers = 0
    assert row[col["parameters"]].startswith(f"{count_params(encoder) / 1e6:.1f}M"), row
    if c.model.decoder_layers:
      extra = (count_params(c.model) - count_params(encoder)) / 1e6
      assert f"+ {extra:.1f}M decoder" in row[col["parameters"]], row


@pytest.mark.parametrize("overrides, match", [
    (dict(kind="next"), "objective.kind"),
    (dict(kind="bootstrap"), "decoder_layers"),
    (dict(z_loss_pooling="mean"), "z_loss_pooling"),
])
def test_bad_objective_settings_are_refused_naming_the_field(overrides, match):
  c = tiny_config()
  c.objective.update(overrides)
  with pytest.raises(ConfigError, match=match):
    derive(c)
  c = tiny_config()
  c.model.decoder_layers = 2
  with pytest.raises(ConfigError, match="only read by objective.kind 'bootstrap'"):
    derive(c)
  c = objective_config("bootstrap")
  c.model.attention, c.model.position = "standard", "learned_absolute"
  with pytest.raises(ConfigError, match="relative or rotary"):
    derive(c)


# ----------------------------------------------------------------------------- evaluation


def test_eval_refuses_a_backend_the_objective_never_trained(tmp_path):
  """Causal scoring of a masked-only model, and mntp or pll of a causal one: one line, exit 2,
  before any checkpoint is read."""
  for config, backend in (("roberta_small", "causal"), ("gpt_small", "pll"),
                          ("strict_small", "pll"), ("boot_bert_small", "mntp")):
    r = subprocess.run([sys.executable, "launch.py", "--mode=eval", "--config",
                        f"configs/{config}.py", f"--workdir={tmp_path / 'none'}",
                        f"--config.eval.backend={backend}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-800:]
    assert f"eval.backend '{backend}' does not fit" in err[0]
  c = load_config("ltg_bert_small")
  assert config_lib.OBJECTIVES == tuple(objectives.KINDS)
  from babylm_jax.eval.run import check_backends_fit
  check_backends_fit(c, ["pll"])  # the fitting backend passes
