"""The PyTorch port (export/modeling_gpt_bert.py) against the Flax model, logit for logit.

Weights are the Flax init plus noise (so that biases, layer weights and the relative-position
LayerNorm all matter), moved through `params_to_tensors`, the same conversion the export
writes. Inputs are random ids and real BLiMP sentences encoded by a tokenizer trained on real
BabyLM text, in padded batches (right and left padding, packed documents), in causal and
bidirectional mode, for every layer weighting. They must agree within 1e-4 in float32.
The last test writes a whole export folder and loads it with transformers' Auto classes in a
subprocess, under the current transformers and under the BabyLM pipeline's pinned 4.51.3.
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


def _models(weighting: str, seed: int = 0):
  config = load_config("smoke")
  config.model.layer_weighting = weighting
  model = GPTBert(config.model, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  params = jax.tree.map(
      lambda x: x + jnp.asarray(rng.normal(0.0, 0.05, x.shape), jnp.float32),
      nnx.to_pure_dict(nnx.state(model)))
  nnx.update(model, params)
  fields = {k: v for k, v in hf.hf_config(config.model).items()
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


def _compare(model, ported, ids_BT, segment_ids_BT):
  B = ids_BT.shape[0]
  worst = {}
  for mode, causal in (("causal", True), ("masked", False)):
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


@pytest.mark.parametrize("weighting", ["gpt_bert", "elc", "residual"])
def test_random_inputs_padded(weighting):
  model, ported, config = _models(weighting)
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
