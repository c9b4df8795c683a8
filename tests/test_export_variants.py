"""Every architecture variant through a real orbax checkpoint, `--mode=export` (run_export),
the Hugging Face Auto classes, `load_from_hf` and `init.from_hf`; and a checkpoint or an
export of one architecture refused by a config of another, naming the field.

The checkpoints hold an initialised state with noise added (so that every bias, norm and
position parameter matters) and a tokenizer trained on real BabyLM text.
"""

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from babylm_jax import config as config_lib
from babylm_jax.data.tokenizer import train_tokenizer
from babylm_jax.errors import ConfigError, UserError
from babylm_jax.export import hf
from babylm_jax.model import hf_weights
from babylm_jax.train import checkpoint as ckpt_lib
from babylm_jax.train import sharding, step as step_lib
from conftest import data_path, load_config

# Each non-default value of every switch, and head dropout (which config.json carries).
VARIANTS = {
    "roberta_like": dict(attention="standard", position="learned_absolute", normformer=False,
                         ffn="gelu", layer_weighting="residual", head_dropout=0.1),
    "gpt_like": dict(attention="standard", position="rotary"),
    "ltg_plain": dict(normformer=False, ffn="gelu", layer_weighting="elc"),
}


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
  text = data_path("babylm_text", "train_100k", "bnc_spoken.train").read_text()
  docs = [line for line in text.splitlines() if line.strip()][:3000]
  path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
  path.write_text(train_tokenizer(docs, load_config("smoke").model.vocab_size).to_str())
  return path


def _config(variant, tmp):
  c = load_config("smoke")
  c.model.update(VARIANTS[variant])
  c.data.cache_dir = str(tmp / "cache")
  c.train.steps = 10
  return c


def _bits(tree):
  return [np.asarray(x).view(np.uint32) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module", params=list(VARIANTS))
def exported(request, tmp_path_factory, tokenizer_json):
  """(config, EMA params, workdir, export folder) of one variant's checkpoint, exported."""
  tmp = tmp_path_factory.mktemp(request.param)
  config = _config(request.param, tmp)
  workdir = tmp / "run"
  workdir.mkdir()
  (workdir / "tokenizer.json").write_text(tokenizer_json.read_text())
  mesh = sharding.make_mesh(config)
  _, state, _ = step_lib.create_train_state(config, config_lib.derive(config), mesh)
  rng = np.random.default_rng(0)
  ema = jax.tree.map(lambda x: x + jnp.asarray(rng.normal(0, 0.05, x.shape), jnp.float32),
                     state.ema_params)
  state = state.replace(ema_params=ema)
  ckpt = ckpt_lib.Checkpointer(str(workdir), config)
  ckpt.save(state, ckpt_lib.make_meta(config, 10, 1000, 1500,
                                      ckpt_lib.tokenizer_file_sha256(tokenizer_json)))
  ckpt.wait()
  ckpt.close()
  config.export.dir = str(tmp / "hf")
  out = hf.run_export(config, str(workdir))
  return config, jax.device_get(ema), workdir, out


def test_export_and_import_are_bit_identical(exported):
  config, ema, _, out = exported
  params = hf_weights.load_from_hf(out, config)
  assert jax.tree.structure(params) == jax.tree.structure(ema)
  assert all(np.array_equal(a, b) for a, b in zip(_bits(params), _bits(ema)))
  c = config.copy_and_resolve_references()
  c.init.from_hf = out
  _, state, _ = step_lib.create_train_state(c, config_lib.derive(c), sharding.make_mesh(c))
  for tree in (state.params, state.ema_params):
    assert all(np.array_equal(a, b) for a, b in zip(_bits(tree), _bits(ema)))


def test_auto_classes_rebuild_the_variant_and_match_jax(exported):
  from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM
  config, _, workdir, out = exported
  hf_cfg = AutoConfig.from_pretrained(out, trust_remote_code=True)
  for field in ("attention", "position", "normformer", "ffn"):
    assert getattr(hf_cfg, field) == config.model[field], field
  assert hf_cfg.head_dropout_prob == config.model.head_dropout
  model, _ = ckpt_lib.load_model(config, str(workdir))
  rng = np.random.default_rng(1)
  ids = rng.integers(16, config.model.vocab_size, (3, 40)).astype(np.int64)
  seg = np.ones_like(ids)
  seg[1, 25:] = 0  # right padding
  seg[2, 15:] = 2  # a second packed document
  for cls, causal in ((AutoModelForCausalLM, True), (AutoModelForMaskedLM, False)):
    m = cls.from_pretrained(out, trust_remote_code=True, local_files_only=True)
    assert m.head.dropout.p == config.model.head_dropout
    with torch.no_grad():
      got = m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(seg)).logits
    want = np.asarray(model(jnp.asarray(ids, jnp.int32), jnp.asarray(seg, jnp.int32),
                            jnp.full((3,), causal)))
    assert np.abs(got.numpy() - want)[seg > 0].max() < 1e-4


def test_another_architecture_is_refused_naming_the_field(exported):
  config, _, workdir, out = exported
  switched = [k for k in config_lib.LATER_MODEL_FIELDS
              if config.model[k] != config_lib.base_config().model[k]]
  assert switched
  for field in switched:
    other = config.copy_and_resolve_references()
    other.model[field] = config_lib.base_config().model[field]
    with pytest.raises(UserError, match=f"model.{field}="):
      ckpt_lib.load_model(other, str(workdir))
    with pytest.raises(ConfigError, match=f"model.{field}="):
      hf_weights.load_from_hf(out, other)


def test_records_without_the_switches_are_the_default_network(tmp_path):
  """Checkpoints and exports written before the switches existed read as GPT-BERT."""
  default, variant = config_lib.base_config(), config_lib.base_config()
  variant.model.update(VARIANTS["gpt_like"])
  meta = ckpt_lib.make_meta(default, 1, 1, 1, "sha")
  for k in config_lib.LATER_MODEL_FIELDS + ("max_position",):
    del meta["model"][k]
  ckpt_lib.check_meta(meta, default, "sha", "old")
  with pytest.raises(UserError, match="model.attention='disentangled'"):
    ckpt_lib.check_meta(meta, variant, "sha", "old")
  old = {k: v for k, v in hf.hf_config(default.model).items()
         if k not in config_lib.LATER_MODEL_FIELDS}
  (tmp_path / "config.json").write_text(json.dumps(old))
  fields = hf_weights.model_fields_from_hf(tmp_path)
  assert {k: fields[k] for k in config_lib.LATER_MODEL_FIELDS} == {
      k: default.model[k] for k in config_lib.LATER_MODEL_FIELDS}
