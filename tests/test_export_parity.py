"""The PyTorch port (export/modeling_gpt_bert.py) against the Flax model, logit for logit.

Per objective (OBJECTIVES) the export offers only the LM classes that fit, with the masked LM's
logits at i scoring token i for masked-only models, and BootBERT's decoder filling `<mask>`
holes; an exported folder of each loads with the Auto classes and scores a sentence the way the
BabyLM pipeline does exactly as the JAX scorer does.

Weights are the Flax init plus noise (so that biases, layer weights and the relative-position
LayerNorm all matter), moved through `params_to_tensors`, the same conversion the export
writes. Inputs are random ids and real BLiMP sentences encoded by a tokenizer trained on real
BabyLM text, in padded batches (right and left padding, packed documents), in causal and
bidirectional mode, for every layer weighting and every architecture switch (VARIANTS). They
must agree within 1e-4 in float32.
The last tests write whole export folders and load them with transformers' Auto classes
(in a subprocess under the current transformers and under the BabyLM pipeline's pinned 4.51.3).
"""

import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from babylm_jax.config import BOS_ID, PAD_ID
from babylm_jax.data.tokenizer import train_tokenizer
from babylm_jax.export import configuration_gpt_bert, hf, modeling_gpt_bert
from babylm_jax.model.gpt_bert import GPTBert
from conftest import data_path, load_config
from pinned_env import pinned_python, probe

TOL = 1e-4
# config.model overrides: together they take every value of every architecture switch.
VARIANTS = {
    "gpt_bert": {},
    "elc": dict(layer_weighting="elc"),
    "residual": dict(layer_weighting="residual"),
    "standard_absolute_plain_gelu": dict(attention="standard", position="learned_absolute",
                                         normformer=False, ffn="gelu",
                                         layer_weighting="residual"),
    "standard_rotary": dict(attention="standard", position="rotary"),
    "disentangled_plain_gelu_elc": dict(normformer=False, ffn="gelu", layer_weighting="elc"),
    "ltg": dict(attention="ltg", layer_weighting="residual"),
    "ltg_elc": dict(attention="ltg", layer_weighting="elc"),
    "elc_weighted_output": dict(layer_weighting="elc_weighted_output"),
    # BootBERT's: LTG-BERT's attention, affine LayerNorms ending the encoder and the decoder,
    # a head without its first LayerNorm.
    "boot_bert": dict(attention="ltg", final_norm=True, depth_scaling="boot_bert",
                      layer_weighting="residual"),
}


@pytest.fixture(scope="module")
def tokenizer():
  text = data_path("babylm_text", "train_100k", "bnc_spoken.train").read_text()
  docs = [line for line in text.splitlines() if line.strip()][:4000]
  return train_tokenizer(docs, 1024)


@pytest.fixture(scope="module")
def blimp_sentences():
  sents = []
  for path in sorted(data_path("blimp").glob("*.jsonl"))[:6]:
    for line in path.read_text().splitlines()[:3]:
      rec = json.loads(line)
      sents += [rec["sentence_good"], rec["sentence_bad"]]
  return sents


# objective.kind -> (config.model overrides, the LM classes its export offers)
OBJECTIVES = {"masked": ({}, ("masked",)), "causal": ({}, ("causal",)),
              "bootstrap": (dict(decoder_layers=2), ("masked",))}


def _models(variant: str, seed: int = 0, objective: str = "hybrid"):
  config = load_config("smoke")
  config.model.update(VARIANTS[variant])
  config.model.update(OBJECTIVES.get(objective, ({},))[0])
  config.objective.kind = objective
  model = GPTBert(config.model, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  params = jax.tree.map(
      lambda x: x + jnp.asarray(rng.normal(0.0, 0.05, x.shape), jnp.float32),
      nnx.to_pure_dict(nnx.state(model)))
  nnx.update(model, params)
  fields = {k: v for k, v in hf.hf_config(config.model, objective=objective).items()
            if k not in ("auto_map", "architectures", "model_type")}
  torch_cfg = configuration_gpt_bert.GptBertConfig(**fields)
  tensors = {k: torch.from_numpy(v) for k, v in hf.params_to_tensors(params).items()}
  ported = {}
  for name, cls in (("causal", modeling_gpt_bert.GptBertForCausalLM),
                    ("masked", modeling_gpt_bert.GptBertForMaskedLM)):
    m = cls(torch_cfg).eval()
    m.load_state_dict(tensors, strict=True)  # every weight named and shaped as exported
    ported[name] = m
  return model, ported, config


def _compare(model, ported, ids_BT, segment_ids_BT, modes=("causal", "masked")):
  B = ids_BT.shape[0]
  worst = {}
  for mode, causal in (("causal", True), ("masked", False)):
    if mode not in modes:
      continue
    jax_BTV = np.asarray(model(jnp.asarray(ids_BT), jnp.asarray(segment_ids_BT),
                               jnp.full((B,), causal)))
    with torch.no_grad():
      torch_BTV = ported[mode](input_ids=torch.from_numpy(ids_BT.astype(np.int64)),
                               attention_mask=torch.from_numpy(
                                   segment_ids_BT.astype(np.int64))).logits.numpy()
    assert torch_BTV.dtype == np.float32 and torch_BTV.shape == jax_BTV.shape
    real = segment_ids_BT > 0
    worst[mode] = float(np.abs(jax_BTV - torch_BTV)[real].max())
    assert worst[mode] < TOL, (mode, worst[mode])
  return worst


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_random_inputs_padded(variant):
  model, ported, config = _models(variant)
  rng = np.random.default_rng(1)
  B, T = 4, 48
  ids = rng.integers(0, config.model.vocab_size, (B, T)).astype(np.int32)
  seg = np.ones((B, T), np.int32)
  seg[1, 30:] = 0  # right padding
  seg[2, :9] = 0  # left padding
  seg[3, 20:] = 2  # two packed documents
  seg[3, 40:] = 0
  ids[seg == 0] = PAD_ID
  _compare(model, ported, ids, seg)


def _padded(tokenizer, sentences):
  """(ids, segment ids) [B, T] int32 of `<s>` + each sentence, right-padded."""
  rows = [[BOS_ID] + e.ids for e in tokenizer.encode_batch(sentences, add_special_tokens=False)]
  T = max(map(len, rows))
  ids = np.full((len(rows), T), PAD_ID, np.int32)
  seg = np.zeros((len(rows), T), np.int32)
  for r, row in enumerate(rows):
    ids[r, :len(row)], seg[r, :len(row)] = row, 1
  return ids, seg


def test_real_sentences_padded(tokenizer, blimp_sentences):
  model, ported, _ = _models("gpt_bert", seed=3)
  ids, seg = _padded(tokenizer, blimp_sentences)
  assert (seg == 0).any(), "the batch should hold padded rows"
  _compare(model, ported, ids, seg)


def test_long_rows_use_log_buckets():
  """Past bucket_size / 2 the relative positions are log-spaced; 300 tokens reach far."""
  model, ported, config = _models("gpt_bert", seed=4)
  rng = np.random.default_rng(5)
  ids = rng.integers(16, config.model.vocab_size, (2, 300)).astype(np.int32)
  seg = np.ones_like(ids)
  seg[1, 250:] = 0
  _compare(model, ported, ids, seg)


def test_padding_does_not_change_real_positions():
  """A sentence alone and inside a padded batch (either side) gets the same logits."""
  _, ported, config = _models("gpt_bert", seed=6)
  rng = np.random.default_rng(7)
  row = torch.from_numpy(rng.integers(16, config.model.vocab_size, (1, 20)))
  pad = torch.full((1, 7), PAD_ID)
  for mode in ("causal", "masked"):
    m = ported[mode]
    with torch.no_grad():
      alone = m(input_ids=row, attention_mask=torch.ones_like(row)).logits[0]
      right = m(input_ids=torch.cat([row, pad], 1),
                attention_mask=torch.cat([torch.ones_like(row), pad * 0], 1)).logits[0, :20]
      left = m(input_ids=torch.cat([pad, row], 1),
               attention_mask=torch.cat([pad * 0, torch.ones_like(row)], 1)).logits[0, 7:]
    assert torch.allclose(alone, right, atol=TOL) and torch.allclose(alone, left, atol=TOL)


def test_causal_rows_ignore_the_future_and_masked_rows_do_not():
  _, ported, config = _models("gpt_bert", seed=8)
  rng = np.random.default_rng(9)
  a = torch.from_numpy(rng.integers(16, config.model.vocab_size, (1, 16)))
  b = a.clone()
  b[0, 10] = (b[0, 10] + 1) % config.model.vocab_size
  with torch.no_grad():
    ca, cb = (ported["causal"](input_ids=x).logits[0] for x in (a, b))
    ma, mb = (ported["masked"](input_ids=x).logits[0] for x in (a, b))
  assert torch.equal(ca[:10], cb[:10]) and not torch.allclose(ca[10], cb[10])
  assert not torch.allclose(ma[:10], mb[:10])


def test_labels_give_the_next_token_loss():
  """HF-style labels: the logits at i - 1 score labels[i], in both LM classes."""
  _, ported, config = _models("gpt_bert", seed=10)
  ids = torch.from_numpy(np.random.default_rng(11).integers(16, config.model.vocab_size,
                                                           (2, 12)))
  for mode in ("causal", "masked"):
    with torch.no_grad():
      out = ported[mode](input_ids=ids, labels=ids)
    want = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]),
                                             ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, want)


def _with_holes(ids_BT, segment_ids_BT, seed):
  """Some real positions (never the first) turned into <mask> tokens."""
  from babylm_jax.config import MASK_ID
  rng = np.random.default_rng(seed)
  holes = (rng.random(ids_BT.shape) < 0.2) & (segment_ids_BT > 0)
  holes[:, 0] = False
  return np.where(holes, MASK_ID, ids_BT).astype(np.int32)


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("variant", ["gpt_bert", "standard_rotary", "ltg", "boot_bert"])
def test_objective_variants_padded_with_holes(objective, variant):
  """Logit parity for each objective's LM classes, on rows with <mask> holes and padding."""
  model, ported, config = _models(variant, seed=12, objective=objective)
  rng = np.random.default_rng(13)
  B, T = 3, 40
  ids = rng.integers(16, config.model.vocab_size, (B, T)).astype(np.int32)
  seg = np.ones((B, T), np.int32)
  seg[1, 25:] = 0
  seg[2, 18:] = 2
  ids = _with_holes(np.where(seg == 0, PAD_ID, ids), seg, 14)
  _compare(model, ported, ids, seg, modes=OBJECTIVES[objective][1])


def test_masked_labels_are_read_at_their_own_position():
  for objective, shift in (("masked", 0), ("bootstrap", 0), ("hybrid", 1)):
    _, ported, config = _models("gpt_bert", seed=15, objective=objective)
    ids = torch.from_numpy(np.random.default_rng(16).integers(16, config.model.vocab_size,
                                                              (2, 12)))
    with torch.no_grad():
      out = ported["masked"](input_ids=ids, labels=ids)
    V = out.logits.shape[-1]
    want = torch.nn.functional.cross_entropy(
        out.logits[:, :ids.shape[1] - shift].reshape(-1, V), ids[:, shift:].reshape(-1))
    assert torch.allclose(out.loss, want), objective


def _pipeline_mlm_score(model, tok, sentence):
  """The BabyLM pipeline's `mlm` backend: each token masked and read at its own position."""
  ids = torch.tensor([tok(sentence)["input_ids"]])
  total = 0.0
  for i in range(1, ids.shape[1]):
    masked = ids.clone()
    masked[0, i] = tok.mask_token_id
    with torch.no_grad():
      logp = torch.log_softmax(model(input_ids=masked).logits[0, i].double(), -1)
    total += float(logp[ids[0, i]])
  return total


@pytest.mark.parametrize("objective", ["masked", "bootstrap", "causal"])
def test_exported_folder_loads_and_scores_as_the_pipeline(objective, tokenizer,
                                                          blimp_sentences, tmp_path):
  """write_folder of each objective: only its LM Auto classes load (offline), and their scores
  of real sentences (`mlm` for masked-only models, `causal` for causal-only) equal the JAX
  scorer's (pll, causal)."""
  from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
  from babylm_jax.eval import scoring
  model, _, config = _models("gpt_bert", seed=17, objective=objective)
  tok_path = tmp_path / "tokenizer.json"
  tokenizer.save(str(tok_path))
  # transformers keeps a folder's remote classes (registered with the Auto classes they loaded
  # as) under the folder's name for the rest of the process: one name per objective.
  out = tmp_path / f"export_{objective}"
  out.mkdir()
  hf.write_folder(out, nnx.to_pure_dict(nnx.state(model)), config.model, tok_path, {},
                  objective)
  cfg = json.loads((out / "config.json").read_text())
  offered = OBJECTIVES[objective][1]
  assert cfg["objective"] == objective and cfg["decoder_layers"] == config.model.decoder_layers
  classes = {"masked": AutoModelForMaskedLM, "causal": AutoModelForCausalLM}
  tok = AutoTokenizer.from_pretrained(str(out))
  sents = blimp_sentences[:4]
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=512)
  seqs = scoring.tokenize(tokenizer, [""] * len(sents), sents, 128)
  for mode, cls in classes.items():
    if mode not in offered:
      with pytest.raises(ValueError):
        cls.from_pretrained(str(out), trust_remote_code=True, local_files_only=True)
      continue
    m = cls.from_pretrained(str(out), trust_remote_code=True, local_files_only=True)
    backend = "pll" if mode == "masked" else "causal"
    here = scorer.score(seqs, backend)
    if mode == "masked":
      there = [_pipeline_mlm_score(m, tok, s) for s in sents]
    else:
      ids = [torch.tensor([tok(s)["input_ids"]]) for s in sents]
      with torch.no_grad():
        there = [float(torch.log_softmax(m(input_ids=x).logits[0].double(), -1)[
            torch.arange(x.shape[1] - 1), x[0, 1:]].sum()) for x in ids]
    np.testing.assert_allclose(there, here, atol=2e-3)
  # AutoModel (what the pipeline fine-tunes) attends as the model was trained: causally for a
  # causal-only model, both ways otherwise.
  from transformers import AutoModel
  encoder = AutoModel.from_pretrained(str(out), trust_remote_code=True, local_files_only=True)
  x = torch.tensor([tok(sents[0])["input_ids"]])
  y = x.clone()
  y[0, -1] = (y[0, -1] + 1) % config.model.vocab_size
  with torch.no_grad():
    hx, hy = (encoder(input_ids=z).last_hidden_state[0, :-1] for z in (x, y))
  assert torch.equal(hx, hy) == (objective == "causal")


# ---------------------------------------------------------------------------------------
# The export folder through transformers' Auto classes, under the current transformers and
# under the BabyLM pipeline's pinned 4.51.3 (tests/pinned_env.py), in a subprocess.

# What a load report says when weights are left out or made up, or a prompt for custom code.
_REPORT_WORDS = ("UNEXPECTED", "MISSING", "not used", "newly initialized", "not initialized",
                 "Do you wish to run the custom code")


def _load_messages(stderr: str) -> dict[str, str]:
  """The probe's stderr per loaded class (each load follows a line '== CLASS')."""
  parts = re.split(r"^== (\w+)$", stderr, flags=re.M)
  return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("which", ["current", "pinned"])
def test_auto_classes_of_an_export_match_jax(tokenizer, blimp_sentences, tmp_path, which):
  python = sys.executable if which == "current" else pinned_python()
  model, _, config = _models("gpt_bert", seed=12)
  tokenizer.save(str(tmp_path / "tokenizer.json"))
  export = tmp_path / "export"
  export.mkdir()
  hf.write_folder(export, nnx.to_pure_dict(nnx.state(model)), config.model,
                  tmp_path / "tokenizer.json", {"step": 0})
  ids, mask = _padded(tokenizer, blimp_sentences)
  B = len(ids)
  mask[-1, 6:] *= 2  # two packed documents in the last row
  np.savez(tmp_path / "batch.npz", input_ids=ids, attention_mask=mask)

  res = probe(python, "logits", export, tmp_path / "batch.npz", tmp_path / "logits.npz")
  info = json.loads(res.stdout.strip().splitlines()[-1])
  assert info["transformers"] == "4.51.3" if which == "pinned" else \
      info["transformers"].startswith("5.")
  assert (info["AutoModelForCausalLM"], info["AutoModelForMaskedLM"], info["classifier"],
          info["encoder"]) == ("GptBertForCausalLM", "GptBertForMaskedLM",
                               "GptBertForSequenceClassification", "GptBertModel")
  messages = _load_messages(res.stderr)
  assert set(messages) == {"AutoModelForCausalLM", "AutoModelForMaskedLM",
                           "AutoModelForSequenceClassification", "AutoModel"}
  for name, text in messages.items():
    said = [w for w in _REPORT_WORDS if w in text]
    if name == "AutoModelForSequenceClassification":
      # Only the new head is reported, as for any pretrained encoder; nothing is left unused.
      assert "newly initialized" in text or "MISSING" in text, text
      said = [w for w in said if w not in ("MISSING", "newly initialized", "not initialized")]
      named = set(re.findall(r"\b((?:model|head|classifier)\.[\w.]+)", text))
      assert named and all(k.startswith("classifier.") for k in named), named
    assert not said, f"loading the export as {name} printed {said}:\n{text[-2000:]}"
  got = np.load(tmp_path / "logits.npz")
  for name, causal in (("AutoModelForCausalLM", True), ("AutoModelForMaskedLM", False)):
    want = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask), jnp.full((B,), causal)))
    assert np.abs(got[name] - want)[mask > 0].max() < TOL, name
  assert got["classifier"].shape == (B, 3) and np.isfinite(got["classifier"]).all()
