"""Fine-tuning on the BabyLM glue_filtered files: the official recipe, its metrics, the pair
encoding of the exported tokenizer, and WARP prompt tuning (the reference's recipe, the mask
read where each objective's head predicts it, the frozen model deterministic), with a tiny
GPT-BERT."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from babylm_jax.config import MASK_ID, UNK_ID, base_config
from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval import finetune, glue, warp
from babylm_jax.model.gpt_bert import GPTBert
from conftest import data_path, load_config
from eval_helpers import small_tokenizer, tiny_gpt_bert

GLUE = "babylm_eval/glue_filtered"

# The official BabyLM 2025 recipe, read off the pipeline's eval_finetuning.sh and its
# finetune/run.py defaults: task -> (batch, lr, epochs, seed, metrics, selection metric).
BINARY = ("accuracy", "f1", "mcc")
OFFICIAL = {
    "boolq": (16, 3e-5, 10, 42, BINARY, "accuracy"),
    "multirc": (16, 3e-5, 10, 42, BINARY, "accuracy"),
    "rte": (32, 3e-5, 10, 42, BINARY, "accuracy"),
    "wsc": (32, 3e-5, 30, 42, BINARY, "accuracy"),
    "mrpc": (32, 3e-5, 10, 42, BINARY, "f1"),
    "qqp": (32, 3e-5, 10, 42, BINARY, "f1"),
    "mnli": (32, 3e-5, 10, 42, ("accuracy",), "accuracy"),
}


@pytest.mark.parametrize("config_name", ["base", "smoke", "strict_small", "strict"])
def test_recipe_is_the_official_one(config_name):
  c = base_config() if config_name == "base" else load_config(config_name)
  assert set(glue.TASKS) == set(OFFICIAL)
  for task, (batch, lr, epochs, seed, metrics, select) in OFFICIAL.items():
    r = finetune.recipe(c, task)
    assert (r.batch_size, r.lr, r.epochs, r.seed) == (batch, lr, epochs, seed), task
    assert (r.max_length, r.warmup_fraction, r.weight_decay, r.min_lr_ratio,
            r.classifier_dropout, r.eval_batch_size) == (512, 0.06, 0.01, 0.1, 0.1, 64)
    assert glue.TASKS[task].metrics == metrics and glue.TASKS[task].select == select
    # The leaderboard (calculate_results_from_pred.py) reports accuracy for every task.
    assert glue.TASKS[task].headline == "accuracy"
    assert r.causal is (c.objective.kind == "causal")


def test_recipe_overrides_and_errors():
  c = base_config()
  c.finetune.batch_size, c.finetune.epochs, c.finetune.lr = 8, 2, 1e-4
  assert dataclasses.astuple(finetune.recipe(c, "boolq"))[1:4] == (8, 1e-4, 2)
  c = base_config()
  c.finetune.method = "warp"
  c.finetune.lr = 5e-4  # the flat overrides apply to WARP too
  assert finetune.recipe(c, "rte").lr == 5e-4
  c.finetune.method = "lora"
  with pytest.raises(ConfigError, match="finetune.method 'lora' is unknown"):
    finetune.recipe(c, "rte")
  with pytest.raises(ConfigError, match="finetune.task 'cola' is unknown"):
    finetune.recipe(base_config(), "cola")
  c = base_config()
  c.finetune.batch_size = 0  # not "unset": an error, never silently the official 32
  with pytest.raises(ConfigError, match=r"finetune.batch_size \(0\) must be positive"):
    finetune.recipe(c, "rte")


def test_lr_schedule_warms_up_then_falls_to_a_tenth():
  r = finetune.recipe(base_config(), "rte")
  lr = finetune.lr_schedule(r, 1000)  # int(0.06 x 1000) = 60 warmup steps
  at = lr
  assert at(0) == 0.0 and at(30) == pytest.approx(1.5e-5) and at(60) == pytest.approx(3e-5)
  mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
  assert at(530) == pytest.approx(3e-5 * mid) and at(1000) == pytest.approx(3e-6)
  after = [at(s) for s in range(60, 1001, 10)]
  assert all(a >= b for a, b in zip(after, after[1:]))


# The WARP reference's recipe (YerevaNN/WARP: the README's "Training WARP" command over
# configs/warp.jsonnet's defaults and the AllenNLP trainer they run), the same for every task.
WARP_REFERENCE = dict(batch_size=8, lr=1e-3, epochs=30, weight_decay=0.0, grad_norm=1.0,
                      schedule="slanted_triangular", warmup_fraction=0.06,
                      min_lr_ratio=1 / 32, prompts_per_gap=5, prompt_init="mask",
                      verbalizer_init="random")


@pytest.mark.parametrize("config_name", ["base", "strict_small"])
def test_warp_recipe_is_the_references(config_name):
  c = base_config() if config_name == "base" else load_config(config_name)
  c.finetune.method = "warp"
  for task in glue.TASKS:
    r = finetune.recipe(c, task)
    assert {k: getattr(r, k) for k in WARP_REFERENCE} == WARP_REFERENCE, task
    assert r.objective == c.objective.kind
  # WARP-20: four groups of five prompts; the full recipe keeps its own optimizer settings.
  assert warp.num_prompts(r.prompts_per_gap) == 20
  c.finetune.method = "full"
  r = finetune.recipe(c, "rte")
  assert (r.schedule, r.grad_norm, r.weight_decay, r.min_lr_ratio) == ("cosine", 0.0, 0.01, 0.1)


def test_warp_recipe_errors():
  for field, value, message in (
      ("prompts_per_gap", 0, r"finetune.warp.prompts_per_gap \(0\) must be a positive"),
      ("prompt_init", "vocab", "finetune.warp.prompt_init 'vocab' is unknown; use mask or"),
      ("verbalizer_init", "zeros", "finetune.warp.verbalizer_init 'zeros' is unknown"),
      ("grad_norm", -1.0, r"finetune.warp.grad_norm \(-1.0\) must not be negative"),
      ("min_lr_ratio", 1.0, r"finetune.warp.min_lr_ratio \(1.0\) must lie in \[0, 1\)")):
    c = base_config()
    c.finetune.method = "warp"
    c.finetune.warp[field] = value
    with pytest.raises(ConfigError, match=message):
      finetune.recipe(c, "rte")
  c = base_config()
  c.finetune.method, c.finetune.max_length = "warp", 30  # 22 template tokens + 16
  with pytest.raises(ConfigError, match=r"max_length \(30\) leaves no room.*38 or more"):
    finetune.recipe(c, "rte")


def test_warp_schedule_is_allennlps_slanted_triangular():
  """AllenNLP's slanted_triangular (cut_frac 0.06, ratio 32), written out by hand: with N
  steps and cut = int(0.06 N), prop = s / cut before the cut and 1 - (s - cut) / (N - cut)
  after it; lr(s) = lr x (1 + 31 prop) / 32."""
  c = base_config()
  c.finetune.method = "warp"
  r = finetune.recipe(c, "rte")
  lr, N = 1e-3, 1000
  at = finetune.lr_schedule(r, N)
  cut = 60
  for s in (0, 1, 30, 59, 60, 61, 500, 999, 1000):
    prop = s / cut if s < cut else 1 - (s - cut) / (N - cut)
    assert at(s) == pytest.approx(lr * (1 + 31 * prop) / 32), s
  assert at(0) == pytest.approx(lr / 32) and at(60) == pytest.approx(lr)


def test_warp_clips_the_global_gradient_norm_before_adam():
  """Two AdamW steps (no weight decay) over two parameters whose gradients are first scaled
  to a global norm of at most 1, computed by hand as PyTorch's clip_grad_norm_ and AdamW do.
  A large first gradient then leaves the second step as large as a small one: without the
  clip Adam's second moment would remember the large one."""
  tx = finetune._make_steps(None, 0.0, 1.0)[0]
  grads = [dict(a=np.array([30.0, -40.0], np.float32), b=np.array([0.0], np.float32)),  # norm 50
           dict(a=np.array([0.1, 0.2], np.float32), b=np.array([-0.2], np.float32))]  # norm 0.3
  params = dict(a=np.zeros(2, np.float32), b=np.zeros(1, np.float32))
  state = tx.init(params)
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v = {k: np.zeros_like(x) for k, x in params.items()}
  for t, g in enumerate(grads, start=1):
    norm = math.sqrt(sum(float(np.sum(x * x)) for x in g.values()))
    scale = min(1.0, 1.0 / (norm + 1e-6))
    want = {}
    for k in g:
      gk = g[k] * scale
      m[k] = 0.9 * m[k] + 0.1 * gk
      v[k] = 0.999 * v[k] + 0.001 * gk * gk
      want[k] = (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
    got, state = tx.update(g, state, params)
    for k in g:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6)


def test_metrics_against_hand_computation():
  pred = np.array([1, 1, 0, 0, 1, 0, 1, 1])
  gold = np.array([1, 0, 0, 1, 1, 0, 0, 1])
  # tp 3, fp 2, fn 1, tn 2
  m = glue.metrics(pred, gold)
  assert m["accuracy"] == 5 / 8
  assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
  assert m["mcc"] == pytest.approx((3 * 2 - 2 * 1) / math.sqrt(5 * 4 * 4 * 3))
  # Three classes (mnli): confusion rows [1 0 0], [0 1 1], [0 0 1]; MCC = (3x4 - 5) / 10.
  m = glue.metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))
  assert m["accuracy"] == 0.75 and m["mcc"] == pytest.approx(0.7)
  # A constant prediction: no correlation, and F1 0 when label 1 is never predicted.
  m = glue.metrics(np.zeros(4, int), np.array([0, 1, 0, 1]))
  assert m == dict(accuracy=0.5, f1=0.0, mcc=0.0)


def test_every_split_parses():
  folder = data_path(GLUE)
  found = 0
  for task, t in glue.TASKS.items():
    for split in ("train", "valid"):
      if (folder / f"{task}.{split}.jsonl").exists():
        s = glue.load_split(str(folder), task, split)
        assert set(s.labels.tolist()) == set(range(t.num_labels)), (task, split)
        assert len(s.pairs) == s.file["examples"] and len(s.file["sha256"]) == 64
        found += 1
  assert found == 12  # boolq and multirc ship without a training split
  assert glue.available(str(folder)) == (["mnli", "mrpc", "qqp", "rte", "wsc"],
                                         ["boolq", "multirc"])


def test_pairs_are_built_as_the_pipeline_builds_them():
  folder = str(data_path(GLUE))
  wsc = json.loads(data_path(GLUE, "wsc.valid.jsonl").read_text().splitlines()[0])
  assert glue.load_split(folder, "wsc", "valid", 1).pairs[0] == (
      f'Does "{wsc["span2_text"]}" refer to "{wsc["span1_text"]}" in this passage?',
      wsc["text"])
  mrc = json.loads(data_path(GLUE, "multirc.valid.jsonl").read_text().splitlines()[0])
  assert glue.load_split(folder, "multirc", "valid", 1).pairs[0] == (
      f"Question: {mrc['question']} Answer: {mrc['answer']}", mrc["paragraph"])


def test_missing_train_split_names_the_file():
  with pytest.raises(DataError, match=r"boolq\.train\.jsonl' is missing"):
    glue.load_split(str(data_path(GLUE)), "boolq", "train")


def test_malformed_line_names_file_and_line(tmp_path):
  lines = (data_path(GLUE, "rte.valid.jsonl").read_text().splitlines()[:5])
  lines[3] = '{"sentence1": "A.", "sentence2": "B.", "label": 7}'
  (tmp_path / "rte.valid.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"rte\.valid\.jsonl' line 4 .*label in 0\.\.1"):
    glue.load_split(str(tmp_path), "rte", "valid")
  lines[3] = lines[3][:-3]
  (tmp_path / "rte.valid.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"line 4 is not valid JSON"):
    glue.load_split(str(tmp_path), "rte", "valid")


def test_pair_encoding_is_the_exported_tokenizers(tmp_path):
  """What the model reads equals `tokenizer(a, b, truncation=True, max_length=L)` of the
  Hugging Face tokenizer that --mode=export writes, long passages cut included."""
  from transformers import AutoTokenizer
  from babylm_jax.export import hf
  tok = small_tokenizer(512)
  tok.save(str(tmp_path / "raw.json"))
  hf._write_tokenizer(tmp_path / "raw.json", tmp_path, 512)
  auto = AutoTokenizer.from_pretrained(str(tmp_path))
  for task in ("boolq", "multirc", "wsc"):
    pairs = glue.load_split(str(data_path(GLUE)), task, "valid", 12).pairs
    enc = finetune.encode(tok, finetune.Classifier, pairs, 64)
    want = auto([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=64)
    assert enc.seqs == want["input_ids"], task
    assert (enc.reads == 0).all() and enc.truncated > 0
  # WARP frames the same pair with its twenty prompt slots and a mask, within the same length.
  model, c = tiny_gpt_bert(512)
  w = warp.Warp(model, glue.TASKS[task], _warp_recipe(c), tok)
  enc = finetune.encode(tok, w, pairs, 64)
  for ids, read in zip(enc.seqs, enc.reads):
    assert len(ids) <= 64 and ids.count(MASK_ID) == 1 and ids[read + 1] == MASK_ID
    assert ids.count(warp.SLOT_ID) == 20


def test_warp_framing_takes_only_the_templates_mask_and_slots():
  """A text that spells `<mask>` or the slot token keeps the template's mask as the read
  position, and the spelled slot becomes `<unk>`, so prompt j still lands in slot j."""
  tok = small_tokenizer(512)
  model, c = tiny_gpt_bert(512)
  for kind, offset in (("hybrid", -1), ("masked", 0)):
    c.objective.kind = kind
    w = warp.Warp(model, glue.TASKS["rte"], _warp_recipe(c, prompts_per_gap=2), tok)
    enc = finetune.encode(tok, w, [("A <mask> here.", "And <special_0> there.")], 64)
    (ids,), (read,) = enc.seqs, enc.reads
    masks = [i for i, t in enumerate(ids) if t == MASK_ID]
    assert len(masks) == 2 and ids.count(warp.SLOT_ID) == 8 and UNK_ID in ids
    # The template's mask follows the second group of slots; the text's comes earlier.
    template_mask = masks[1]
    assert ids[template_mask - 1] == warp.SLOT_ID and read == template_mask + offset


def _fit_rte_subset(tmp_path, model, c, method, lr, epochs, batch_size=16):
  """Fine-tunes on 48 RTE training pairs, validating on the same pairs to measure the fit."""
  lines = data_path(GLUE, "rte.train.jsonl").read_text().splitlines()[:48]
  for split in ("train", "valid"):
    (tmp_path / f"rte.{split}.jsonl").write_text("\n".join(lines) + "\n")
  c.finetune.update(dict(method=method, data_dir=str(tmp_path), max_length=64,
                         batch_size=batch_size, lr=lr, epochs=epochs))
  return finetune.finetune(model, small_tokenizer(512), c, "rte")


def test_full_finetuning_fits_a_small_rte_subset(tmp_path):
  """With a high learning rate the tiny model fits 48 RTE pairs: the whole loop learns, and
  the kept epoch is the one with the best validation accuracy."""
  model, c = tiny_gpt_bert(512)
  result, pred, _ = _fit_rte_subset(tmp_path, model, c, "full", lr=3e-3, epochs=12)
  assert result["accuracy"] >= 0.9, result["history"]
  losses = [h["train_loss"] for h in result["history"]]
  assert losses[-1] < 0.5 * losses[0]
  best = max(h["valid_accuracy"] for h in result["history"])
  assert result["accuracy"] == best and result["headline"] == pytest.approx(100 * best)
  assert result["accuracy"] == np.mean(pred == glue.load_split(c.finetune.data_dir, "rte",
                                                               "valid").labels)
  assert result["recipe"]["seed"] == 42 and result["method"] == "full"
  assert result["valid_examples"] == result["train_examples"] == 48
  D = c.model.hidden_size
  lm_head = D * D + D + c.model.vocab_size  # the LM head is not part of the classifier
  encoder = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert result["trained_params"] == encoder - lm_head + (D * D + D) + (D * 2 + 2)
  json.dumps(result)  # the report is plain JSON


def _warp_recipe(c, **warp):
  """WARP's recipe for rte from config `c` (its objective.kind), with finetune.warp changes."""
  c.finetune.method = "warp"
  c.finetune.warp.update(warp)
  return finetune.recipe(c, "rte")


def test_warp_fits_a_small_rte_subset_with_every_pretrained_weight_unchanged(tmp_path):
  model, c = tiny_gpt_bert(512)
  before = jax.tree.map(np.array, nnx.state(model))
  # WARP's batch of 8. A random model's <mask> embedding means nothing, and twenty copies of
  # it (prompt_init 'mask') fit 48 pairs in about twice the steps; the reference's other
  # initialisation, N(mean, std) of the embeddings, keeps this test short.
  c.finetune.warp.prompt_init = "normal"
  result, _, tuned = _fit_rte_subset(tmp_path, model, c, "warp", lr=3e-2, epochs=20,
                                     batch_size=8)
  assert result["accuracy"] >= 0.9, result["history"]
  D = c.model.hidden_size
  assert result["trained_params"] == (20 + 2) * D + 2  # prompts, verbalizers and their biases
  assert result["recipe"]["schedule"] == "slanted_triangular"
  after = jax.tree.map(np.asarray, nnx.state(tuned.encoder))
  flat_before, flat_after = jax.tree.leaves(before), jax.tree.leaves(after)
  assert len(flat_before) == len(flat_after)
  for b, a in zip(flat_before, flat_after):
    assert b.dtype == a.dtype and np.array_equal(b, a)  # bit for bit
  fresh = warp.Warp(model, glue.TASKS["rte"], finetune.recipe(c, "rte"), small_tokenizer(512))
  for name in ("prompts", "verbalizers", "bias"):
    assert not np.allclose(getattr(fresh, name)[...], getattr(tuned, name)[...]), name


def test_warp_initialises_as_the_reference():
  """Prompts: every one the `<mask>` embedding ('mask'), or draws of N(mean, std) of the
  word embeddings ('normal'). Verbalizers and biases: PyTorch's Linear, uniform in
  +-1/sqrt(D) ('random'), or the label word's embedding and LM-head bias ('words',
  WARP_init)."""
  tok = small_tokenizer(512)
  model, c = tiny_gpt_bert(512, seed=2)
  word = np.asarray(model.embedding.word[...])
  D = c.model.hidden_size
  w = warp.Warp(model, glue.TASKS["mnli"], _warp_recipe(c), tok)
  assert w.prompts.shape == (20, D) and (np.asarray(w.prompts[...]) == word[MASK_ID]).all()
  v, b = np.asarray(w.verbalizers[...]), np.asarray(w.bias[...])
  assert v.shape == (3, D) and b.shape == (3,)
  bound = D ** -0.5
  assert np.abs(v).max() <= bound and np.abs(b).max() <= bound
  assert np.abs(v).max() > 0.9 * bound and len(np.unique(v)) == v.size  # spread, all distinct
  w = warp.Warp(model, glue.TASKS["mnli"],
                _warp_recipe(c, prompt_init="normal", verbalizer_init="words"), tok)
  p = np.asarray(w.prompts[...])
  assert abs(p.mean() - word.mean()) < 0.2 * word.std()
  assert p.std() == pytest.approx(word.std(), rel=0.1)
  head_bias = np.asarray(model.head_module.bias[...])
  for k, label in enumerate(glue.TASKS["mnli"].label_words):
    ids = tok.encode(label, add_special_tokens=False).ids
    np.testing.assert_allclose(w.verbalizers[...][k], word[ids].mean(0), rtol=1e-6)
    assert w.bias[...][k] == pytest.approx(head_bias[ids].mean())


def _objective_model(kind: str, seed: int):
  """A tiny model trained (in name) with objective `kind`; bootstrap has BootBERT's decoder.
  Random head biases, so that a read of the wrong logits would show."""
  model, c = tiny_gpt_bert(512, seed=seed)
  c.objective.kind = kind
  if kind == "bootstrap":
    c.model.decoder_layers = 1
    model = GPTBert(c.model, rngs=nnx.Rngs(seed))
  model.head_module.bias[...] = jax.random.normal(jax.random.key(seed), (512,))
  return model, c


@pytest.mark.parametrize("kind,offset", [("hybrid", -1), ("masked", 0), ("causal", -1),
                                         ("bootstrap", 0)])
def test_warp_reads_the_mask_where_the_objectives_head_predicts_it(kind, offset):
  """With prompt j set to a real token's embedding, verbalizers to two words' embeddings and
  biases to their LM-head biases, WARP's scores are the frozen model's own logits for those
  words (`model(...)`: states and head, the objective's attention) where the objective's
  head predicts the token at the mask m: m - 1 for hybrid (masked-next-token) and causal,
  m for masked and bootstrap (whose decoder fills the `<mask>` hole). The scores at the
  other of m - 1, m differ, and so would BootBERT's encoder without its decoder."""
  tok = small_tokenizer(512)
  model, c = _objective_model(kind, seed=3)
  w = warp.Warp(model, glue.TASKS["rte"], _warp_recipe(c, prompts_per_gap=2), tok)
  word = model.embedding.word[...]
  stand_in = np.arange(100, 108)
  labels = np.array([200, 300])
  w.prompts[...] = word[stand_in]
  w.verbalizers[...] = word[labels]
  w.bias[...] = model.head_module.bias[...][labels]
  pairs = glue.load_split(str(data_path(GLUE)), "rte", "valid", 6).pairs
  enc = finetune.encode(tok, w, pairs, 96)
  ids, seg, read = finetune._batch(enc, np.arange(6), 6, 96)
  got = nnx.jit(lambda w, *a: w(*a, deterministic=True))(w, ids, seg, read)
  plain = ids.copy()
  for row in plain:  # the j-th slot of a row holds prompt j
    row[row == warp.SLOT_ID] = stand_in
  is_causal = np.full(6, kind == "causal")
  logits = nnx.jit(lambda m, *a: m(*a))(model, plain, seg, is_causal)
  mask_at = np.array([list(r).index(MASK_ID) for r in ids])
  rows = np.arange(6)[:, None]
  want = logits[rows, (mask_at + offset)[:, None], labels]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  wrong = logits[rows, (mask_at - 1 - offset)[:, None], labels]
  assert np.abs(np.asarray(got) - wrong).max(axis=1).min() > 1e-2  # every row
  lengths = np.array([len(s) for s in enc.seqs])
  if kind == "causal":  # the mask comes last, so the read sees the whole framed pair
    assert (mask_at == lengths - 1).all()
  else:
    assert (mask_at < lengths - 8).all()
  if kind == "bootstrap":
    hidden = model.encode(plain, seg, is_causal)
    encoder_only = model.head(hidden)[rows, mask_at[:, None], labels]
    assert np.abs(np.asarray(got) - encoder_only).max(axis=1).min() > 1e-2


def test_warp_runs_the_frozen_model_deterministically_and_trains_only_its_vectors():
  """With the model's dropout at 0.3 (and its head's), two training-mode forward passes
  with different dropout keys give identical scores, equal to evaluation mode's; a train
  step's loss does not depend on the key either. The trained state is the prompts,
  verbalizers and biases alone, and every prompt gets a gradient."""
  tok = small_tokenizer(512)
  model, c = tiny_gpt_bert(512)
  model.cfg.dropout = model.cfg.head_dropout = 0.3
  w = warp.Warp(model, glue.TASKS["rte"], _warp_recipe(c, prompts_per_gap=2), tok)
  pairs = glue.load_split(str(data_path(GLUE)), "rte", "valid", 8).pairs
  batch = finetune._batch(finetune.encode(tok, w, pairs, 64), np.arange(8), 8, 64)
  run = nnx.jit(lambda w, k, *a: w(*a, deterministic=False, rngs=nnx.Rngs(dropout=k)))
  first = np.asarray(run(w, jax.random.key(0), *batch))
  second = np.asarray(run(w, jax.random.key(1), *batch))
  assert np.array_equal(first, second)
  assert np.array_equal(first, np.asarray(nnx.jit(
      lambda w, *a: w(*a, deterministic=True))(w, *batch)))
  graphdef, trained, frozen = nnx.split(w, warp.Warp.trainable, ...)
  assert sorted(str(p[0]) for p, _ in nnx.to_flat_state(trained)) == [
      "bias", "prompts", "verbalizers"]
  labels = np.array([0, 1] * 4, np.int32)

  def loss(t):
    logits = nnx.merge(graphdef, t, frozen)(*batch, deterministic=False, rngs=nnx.Rngs(0))
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

  grads = jax.grad(loss)(trained)
  assert (np.abs(np.asarray(grads["prompts"][...])).sum(axis=1) > 0).all()  # all 8 prompts
  tx, step, _ = finetune._make_steps(graphdef, 0.0, 1.0)
  state = tx.init(trained)
  losses = [float(step(trained, frozen, state, *batch, labels, 1e-3, jax.random.key(k))[2])
            for k in (0, 1)]
  assert losses[0] == losses[1]


def test_dropout_in_training_follows_the_model_config():
  """The pipeline trains the encoder in training mode, so its dropout is the model's: two
  steps from one state with different dropout keys give different losses."""
  tok = small_tokenizer(512)
  model, c = tiny_gpt_bert(512)
  model.cfg.dropout = 0.3  # the encoder's own rate; the head's dropout is turned off
  c.finetune.classifier_dropout = 0.0
  r = finetune.recipe(c, "rte")
  clf = finetune.Classifier(model, glue.TASKS["rte"], r, tok, rngs=nnx.Rngs(0))
  graphdef, trained, frozen = nnx.split(clf, finetune.Classifier.trainable, ...)
  tx, step, _ = finetune._make_steps(graphdef, 0.01)
  pairs = glue.load_split(str(data_path(GLUE)), "rte", "valid", 8).pairs
  enc = finetune.encode(tok, finetune.Classifier, pairs, 64)
  batch = finetune._batch(enc, np.arange(8), 8, 64)
  labels = np.zeros(8, np.int32)
  state = tx.init(trained)
  losses = [float(step(trained, frozen, state, *batch, labels, 0.0, jax.random.key(k))[2])
            for k in (0, 1, 0)]
  assert losses[0] != losses[1] and losses[0] == losses[2]


@pytest.mark.parametrize("objective", ["causal", "hybrid"])
def test_classifier_reads_what_the_pipeline_reads_of_our_export(tmp_path, objective):
  """The pipeline loads our export with AutoModel, passes a padding mask, classifies from
  last_hidden_state[:, 0] with its head. Our fine-tuning model, with the same weights, gives
  the same encoder states (every position) and logits within 1e-4: a causal-only model
  attends causally there (so `<s>` sees only itself and every example reads the same state),
  GPT-BERT bidirectionally."""
  import torch
  from transformers import AutoModel
  from babylm_jax.export import hf
  from babylm_jax.model.gpt_bert import GPTBert
  tok = small_tokenizer(512)
  c = load_config("smoke")
  c.model.vocab_size = 512
  c.objective.kind = objective
  model = GPTBert(c.model, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)  # noise, so that biases and layer weights all matter
  params = jax.tree.map(lambda x: x + jnp.asarray(rng.normal(0.0, 0.05, x.shape), jnp.float32),
                        nnx.to_pure_dict(nnx.state(model)))
  nnx.update(model, params)
  tok.save(str(tmp_path / "tokenizer.json"))
  out = tmp_path / "export"
  out.mkdir()
  hf.write_folder(out, params, c.model, tmp_path / "tokenizer.json", {}, objective)
  ported = AutoModel.from_pretrained(str(out), trust_remote_code=True,
                                     local_files_only=True).eval()

  r = finetune.recipe(c, "rte")
  assert r.causal is (objective == "causal")
  clf = finetune.Classifier(model, glue.TASKS["rte"], r, tok, rngs=nnx.Rngs(1))
  pairs = glue.load_split(str(data_path(GLUE)), "rte", "valid", 6).pairs
  enc = finetune.encode(tok, finetune.Classifier, pairs, 96)
  ids, seg, read = finetune._batch(enc, np.arange(6), 6, 96)
  ours = nnx.jit(lambda m, *a: m(*a, deterministic=True))(clf, ids, seg, read)
  states = nnx.jit(lambda m, i, s: m.encoder.encode(i, s, jnp.full((6,), m.causal)))(
      clf, ids, seg)
  features = nnx.jit(lambda m, *a: m.features(*a, deterministic=True))(clf, ids, seg, read)

  D = c.model.hidden_size
  head = torch.nn.Sequential(  # the pipeline's ClassifierHead, our head's weights
      torch.nn.LayerNorm(D, 1e-5, elementwise_affine=False), torch.nn.Linear(D, D),
      torch.nn.GELU(), torch.nn.LayerNorm(D, 1e-5, elementwise_affine=False),
      torch.nn.Dropout(0.1), torch.nn.Linear(D, 2)).eval()
  with torch.no_grad():
    for i, ours_linear in ((1, clf.dense), (5, clf.out)):
      head[i].weight.copy_(torch.from_numpy(np.asarray(ours_linear.kernel[...]).T.copy()))
      head[i].bias.copy_(torch.from_numpy(np.asarray(ours_linear.bias[...]).copy()))
    hidden = ported(input_ids=torch.from_numpy(ids.astype(np.int64)),
                    attention_mask=torch.from_numpy((seg > 0).astype(np.int64))
                    ).last_hidden_state
    theirs = head(hidden[:, 0]).numpy()
  real = seg > 0
  np.testing.assert_allclose(np.asarray(states)[real], hidden.numpy()[real], atol=1e-4)
  np.testing.assert_allclose(np.asarray(features), hidden[:, 0].numpy(), atol=1e-4)
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4)
  spread = float(np.ptp(np.asarray(features), axis=0).max())
  if objective == "causal":
    assert spread < 1e-5  # `<s>` under causal attention: one state for every example
    # Reading it bidirectionally (as fine-tuning did before) is another model.
    other = finetune.Classifier(model, glue.TASKS["rte"], dataclasses.replace(r, causal=False),
                                tok, rngs=nnx.Rngs(1))
    bi = nnx.jit(lambda m, *a: m.features(*a, deterministic=True))(other, ids, seg, read)
    assert np.abs(np.asarray(bi) - hidden[:, 0].numpy()).max() > 1e-2
  else:
    assert spread > 1e-2
