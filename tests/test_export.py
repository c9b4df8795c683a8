"""--mode=export end to end: a real (tiny) training run, exported and loaded back.

The folder must load offline with transformers' Auto classes (trust_remote_code=True) and
AutoTokenizer, give the same logits and the same BLiMP scores as the JAX model, hand every
parameter back bit for bit through `load_from_hf`, export milestones as sub-folders, and
refuse bad input with one sentence, exit code 2 and nothing half-written.
"""

import os
import pickle
import subprocess
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # everything must load from the folder alone

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from babylm_jax.errors import ConfigError, DataError, UserError
from babylm_jax.eval import scoring
from babylm_jax.eval.suites import load_suite
from babylm_jax.export import hf
from babylm_jax.train import checkpoint as ckpt_lib
from conftest import ROOT, data_path, load_config, not_shared, smoke_config

MILESTONE = 1_000_000


def _config(tmp):
  c = smoke_config(steps=4)
  c.data.cache_dir = str(tmp / "cache")
  c.train.eval_every = 4
  c.train.eval_batches = 1
  c.train.log_every = 2
  c.checkpoint.every = 2
  return c


def _pure(params):
  return jax.tree.map(np.asarray, params)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A 4-step smoke run, plus a milestone saved from its last state with changed weights."""
  from babylm_jax import config as config_lib
  from babylm_jax.train import sharding, step as step_lib
  from babylm_jax.train.loop import train
  tmp = tmp_path_factory.mktemp("export")
  config = _config(tmp)
  workdir = tmp / "run"
  train(config, str(workdir))
  mesh = sharding.make_mesh(config)
  _, abstract = step_lib.abstract_train_state(config, config_lib.derive(config), mesh)
  ckpt = ckpt_lib.Checkpointer(str(workdir), config)
  state, meta = ckpt.restore(4, abstract)
  shifted = state.replace(ema_params=jax.tree.map(lambda x: x * 0.5 + 0.01, state.ema_params))
  ckpt.save(shifted, dict(meta, words_seen=MILESTONE), milestone_words=MILESTONE)
  ckpt.wait()
  ckpt.close()
  return dict(config=config, workdir=workdir, tmp=tmp, state=jax.device_get(state),
              milestone=jax.device_get(shifted))


def _launch(run, out, *extra):
  cmd = [sys.executable, "launch.py", "--mode=export", "--config", "configs/smoke.py",
         f"--workdir={run['workdir']}", f"--config.export.dir={out}", *extra]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(run):
  out = run["tmp"] / "hf" / "model"
  res = _launch(run, out, "--config.export.milestones=True")
  assert res.returncode == 0, res.stderr[-2000:]
  return out


def _blimp_items(n=6):
  suite = load_suite("blimp", str(data_path("blimp")))
  return suite.items[::max(1, len(suite.items) // n)][:n]


def test_folder_holds_the_files_the_pipeline_reads(exported):
  names = {p.name for p in exported.iterdir()}
  assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "modeling_gpt_bert.py",
          "configuration_gpt_bert.py"} <= names
  assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
  assert not any(p.name.startswith(".model") for p in exported.parent.iterdir())  # no tmp


def test_files_are_readable_by_others(exported, run):
  """model.safetensors was 0600 (safetensors writes it so): an export is made to be shared."""
  assert (exported / "chck_1M").is_dir()
  assert not_shared(exported) == []
  assert not_shared(run["workdir"]) == []  # checkpoints and milestones


def test_auto_tokenizer_sets_specials_and_prepends_bos(exported, run):
  from tokenizers import Tokenizer
  from transformers import AutoTokenizer
  tok = AutoTokenizer.from_pretrained(str(exported), trust_remote_code=True)
  assert (tok.bos_token, tok.cls_token, tok.eos_token, tok.pad_token, tok.mask_token,
          tok.unk_token) == ("<s>", "<s>", "</s>", "<pad>", "<mask>", "<unk>")
  assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.mask_token_id,
          tok.unk_token_id) == (1, 2, 3, 4, 0)
  raw = Tokenizer.from_file(str(run["workdir"] / "tokenizer.json"))
  text = "The cats that the dog chased were hungry."
  assert tok(text)["input_ids"] == [1] + raw.encode(text, add_special_tokens=False).ids
  batch = tok([text, "Hi."], padding=True)
  assert batch["input_ids"][1][-1] == tok.pad_token_id and batch["attention_mask"][1][-1] == 0


def test_auto_models_load_offline_and_match_jax(exported, run):
  from transformers import (AutoModelForCausalLM, AutoModelForMaskedLM,
                            AutoModelForSequenceClassification, AutoTokenizer)
  model, _ = ckpt_lib.load_model(run["config"], str(run["workdir"]))
  tok = AutoTokenizer.from_pretrained(str(exported), trust_remote_code=True)
  sents = [s for it in _blimp_items(3) for s in it.options]
  enc = tok(sents, padding=True, return_tensors="pt")
  ids, mask = enc["input_ids"].numpy(), enc["attention_mask"].numpy()
  for cls, causal in ((AutoModelForCausalLM, True), (AutoModelForMaskedLM, False)):
    m = cls.from_pretrained(str(exported), trust_remote_code=True, local_files_only=True)
    assert not m.training
    with torch.no_grad():
      got = m(**enc).logits.numpy()
    want = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask),
                            jnp.full((len(sents),), causal)))
    assert np.abs(got - want)[mask > 0].max() < 1e-4
  clf = AutoModelForSequenceClassification.from_pretrained(
      str(exported), trust_remote_code=True, local_files_only=True, num_labels=3)
  with torch.no_grad():
    assert clf(**enc).logits.shape == (len(sents), 3)


def _hf_scores(model, tok, sentence, backend):
  """How the pipeline's causal / mntp backends score a sentence with the exported model."""
  ids = torch.tensor([tok(sentence)["input_ids"]])
  n = ids.shape[1]
  with torch.no_grad():
    if backend == "causal":
      logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
      return float(sum(logp[i - 1, ids[0, i]] for i in range(1, n)))
    total = 0.0
    for i in range(1, n):
      masked = ids.clone()
      masked[0, i] = tok.mask_token_id
      logp = torch.log_softmax(model(input_ids=masked).logits[0, i - 1].double(), -1)
      total += float(logp[ids[0, i]])
    return total


def test_blimp_scores_agree_with_the_jax_scorer(exported, run):
  from tokenizers import Tokenizer
  from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
  model, _ = ckpt_lib.load_model(run["config"], str(run["workdir"]))
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=512)
  raw = Tokenizer.from_file(str(run["workdir"] / "tokenizer.json"))
  tok = AutoTokenizer.from_pretrained(str(exported), trust_remote_code=True)
  sents = [s for it in _blimp_items(2) for s in it.options]
  seqs = scoring.tokenize(raw, [""] * len(sents), sents, 128)
  hf_models = {"causal": AutoModelForCausalLM, "mntp": AutoModelForMaskedLM}
  for backend, cls in hf_models.items():
    m = cls.from_pretrained(str(exported), trust_remote_code=True, local_files_only=True)
    here = scorer.score(seqs, backend)
    there = np.array([_hf_scores(m, tok, s, backend) for s in sents])
    np.testing.assert_allclose(there, here, atol=2e-3)
    assert np.ptp(here) > 0.01  # the sentences really differ in score


def test_round_trip_is_bit_identical(exported, run):
  params = hf.load_from_hf(exported, run["config"])
  want = _pure(run["state"].ema_params)
  got = _pure(params)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == np.float32 and g.shape == w.shape
    assert np.array_equal(g.view(np.uint32), w.view(np.uint32))


def test_raw_weights_and_milestones(exported, run):
  sub = exported / hf.milestone_folder(MILESTONE)
  assert sub.name == "chck_1M" and (sub / "model.safetensors").is_file()
  got = _pure(hf.load_from_hf(sub, run["config"]))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(_pure(run["milestone"].ema_params))):
    assert np.array_equal(g, w)
  out = run["tmp"] / "raw"
  res = _launch(run, out, "--config.export.use_ema=False", "--config.export.step=4")
  assert res.returncode == 0, res.stderr[-2000:]
  got = _pure(hf.load_from_hf(out, run["config"]))
  raw, ema = _pure(run["state"].params), _pure(run["state"].ema_params)
  assert all(np.array_equal(g, w) for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(raw)))
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(raw),
                                                      jax.tree.leaves(ema)))


def test_overwrite_replaces_an_earlier_export(run, exported):
  out = run["tmp"] / "again"
  assert _launch(run, out).returncode == 0
  res = _launch(run, out, f"--config.export.words={MILESTONE}",
                "--config.export.overwrite=True")
  assert res.returncode == 0, res.stderr[-2000:]
  got = _pure(hf.load_from_hf(out, run["config"]))
  first = jax.tree.leaves(_pure(run["milestone"].ema_params))
  assert all(np.array_equal(g, w) for g, w in zip(jax.tree.leaves(got), first))
  assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".again")) == []


# ---------------------------------------------------------------------------------------
# Bad input.


def _one_sentence_exit_2(res):
  assert res.returncode == 2, res.stderr[-2000:]
  err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
  assert len(err) == 1 and "Traceback" not in res.stderr
  return err[0]


def test_workdir_without_checkpoint(run, tmp_path):
  empty = tmp_path / "empty_run"
  empty.mkdir()
  out = tmp_path / "out"
  res = _launch(dict(run, workdir=empty), out)
  assert "checkpoint" in _one_sentence_exit_2(res)
  assert not out.exists() and list(tmp_path.iterdir()) == [empty]


def test_non_empty_out_without_overwrite(run, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  assert "overwrite" in _one_sentence_exit_2(_launch(run, out))
  assert [p.name for p in out.iterdir()] == ["notes.txt"]
  # Overwrite never deletes a folder that is not an earlier export (a foreign config.json).
  (out / "config.json").write_text('{"model_type": "bert", "hidden_size": 768}')
  msg = _one_sentence_exit_2(_launch(run, out, "--config.export.overwrite=True"))
  assert "not a babylm_jax export" in msg
  assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_midway_leaves_nothing(run, tmp_path, monkeypatch):
  out = tmp_path / "out"
  calls = []

  def fail_on_milestone(folder, *args, **kwargs):
    calls.append(folder)
    if len(calls) == 2:
      raise RuntimeError("disk full")
    return original(folder, *args, **kwargs)
  original = hf.write_folder
  monkeypatch.setattr(hf, "write_folder", fail_on_milestone)
  c = load_config("smoke")
  c.export.dir = str(out)
  c.export.milestones = True
  with pytest.raises(RuntimeError):
    hf.run_export(c, str(run["workdir"]))
  assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_load_from_hf_refuses_foreign_folders(exported, run, tmp_path):
  foreign = tmp_path / "bert"
  foreign.mkdir()
  (foreign / "config.json").write_text('{"model_type": "bert", "hidden_size": 768}')
  with pytest.raises(ConfigError, match="not a babylm_jax GPT-BERT"):
    hf.load_from_hf(foreign, run["config"])
  other = load_config("smoke")
  other.model.hidden_size = 128
  with pytest.raises(ConfigError, match="hidden_size"):
    hf.load_from_hf(exported, other)
  with pytest.raises(ConfigError, match="not a folder"):
    hf.load_from_hf(tmp_path / "missing", run["config"])


class _Trap:
  """Unpickling this creates a marker file: proof that nothing was unpickled."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (str(self.marker), "w"))


def test_pickled_weights_are_never_read(exported, run, tmp_path):
  folder = tmp_path / "pickled"
  folder.mkdir()
  (folder / "config.json").write_text((exported / "config.json").read_text())
  marker = tmp_path / "unpickled"
  (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
  with pytest.raises(DataError, match="safetensors"):
    hf.load_from_hf(folder, run["config"])
  (folder / "model.safetensors").write_bytes(pickle.dumps(_Trap(marker)))
  with pytest.raises(DataError, match="safetensors"):
    hf.load_from_hf(folder, run["config"])
  assert not marker.exists()


def test_export_config_errors(run):
  c = load_config("smoke")
  with pytest.raises(ConfigError, match="export.dir"):
    hf.run_export(c, str(run["workdir"]))
  c.export.dir = str(run["tmp"] / "never")
  c.export.step, c.export.words = 4, MILESTONE
  with pytest.raises(ConfigError, match="only one"):
    hf.run_export(c, str(run["workdir"]))
  c.export.step, c.export.words = 3, None
  with pytest.raises(UserError, match="step 3"):
    hf.run_export(c, str(run["workdir"]))
  assert not (run["tmp"] / "never").exists()


# ---------------------------------------------------------------------------------------
# --config.init.from_hf: training starts from an exported folder.


def test_train_state_starts_from_an_export(exported, run):
  from babylm_jax import config as config_lib
  from babylm_jax.train import sharding, step as step_lib
  c = _config(run["tmp"])
  c.init.from_hf = str(exported)
  _, state, _ = step_lib.create_train_state(c, config_lib.derive(c), sharding.make_mesh(c))
  want = jax.tree.leaves(_pure(run["state"].ema_params))
  for tree in (state.params, state.ema_params):
    got = jax.tree.leaves(_pure(tree))
    assert all(np.array_equal(g.view(np.uint32), w.view(np.uint32)) for g, w in zip(got, want))
  assert int(state.step) == 0


def test_train_from_a_foreign_folder_is_refused(run, tmp_path):
  foreign = tmp_path / "bert"
  foreign.mkdir()
  (foreign / "config.json").write_text('{"model_type": "bert", "hidden_size": 768}')
  cmd = [sys.executable, "launch.py", "--mode=train", "--config", "configs/smoke.py",
         f"--workdir={tmp_path / 'run'}", f"--config.init.from_hf={foreign}",
         f"--config.data.path={run['config'].data.path}",
         f"--config.data.cache_dir={run['config'].data.cache_dir}",
         f"--config.tokenizer.path={run['workdir'] / 'tokenizer.json'}"]
  res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert "not a babylm_jax GPT-BERT" in _one_sentence_exit_2(res)
  assert not (tmp_path / "run" / "checkpoints").exists()
