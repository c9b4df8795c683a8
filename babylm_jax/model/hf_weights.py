"""The network's parameters in the Hugging Face export layout, both ways.

An export folder (written by babylm_jax/export/hf.py) holds `config.json` and
`model.safetensors` with the PyTorch state dict of export/modeling_gpt_bert.py. This file maps
the JAX params dict to those names and back, and reads an export folder into params; it sits
below both of its users, the export (train -> export) and the training state
(`init.from_hf`), so neither reaches into the other.

Weights go through safetensors only (numpy in and out): nothing here unpickles. Kernels are
stored [in, out] in JAX and [out, in] in PyTorch; transposing float32 is exact, so
export -> `load_from_hf` gives back every parameter bit for bit.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from babylm_jax.config import LATER_MODEL_FIELDS, base_config
from babylm_jax.errors import ConfigError, DataError

MODEL_TYPE = "babylm_gpt_bert"
# config.model field -> config.json field. All of them must agree for an import.
FIELDS = (("vocab_size", "vocab_size"), ("hidden_size", "hidden_size"),
          ("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"),
          ("intermediate_size", "intermediate_size"),
          ("position_bucket_size", "position_bucket_size"),
          ("max_position", "max_position_embeddings"), ("layer_norm_eps", "layer_norm_eps"),
          ("layer_weighting", "layer_weighting"), ("attention", "attention"),
          ("position", "position"), ("normformer", "normformer"), ("ffn", "ffn"),
          ("decoder_layers", "decoder_layers"), ("final_norm", "final_norm"))


def _hf_name(path: tuple) -> tuple[str, bool]:
  """(PyTorch parameter name, whether the array is a kernel to transpose) of a params path."""
  keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
  if keys[0] == "head_module":
    prefix = ["head"] + keys[1:]
  elif keys[-1].endswith(("_norm_scale", "_norm_bias")):
    # An affine LayerNorm's two vectors (the relative embedding's, ltg attention's post-norm)
    # are one torch nn.LayerNorm.
    norm, kind = keys[-1].rsplit("_", 1)
    prefix = ["model"] + keys[:-1] + [norm, {"scale": "weight", "bias": "bias"}[kind]]
  elif keys[0] == "embedding" and keys[1] == "word":
    prefix = ["model", "embedding", "word", "weight"]
  else:
    prefix = ["model"] + keys
  if len(keys) > 1 and keys[-2] == "final_norm":  # an nn.LayerNorm in PyTorch
    prefix[-1] = {"scale": "weight", "bias": "bias"}[keys[-1]]
  kernel = prefix[-1] == "kernel"
  if kernel:
    prefix[-1] = "weight"
  return ".".join(prefix), kernel


def abstract_params(model_cfg) -> dict:
  """The params dict of `GPTBert(model_cfg)` as ShapeDtypeStructs (the TrainState layout)."""
  from flax import nnx
  from babylm_jax.model.gpt_bert import GPTBert
  model = nnx.eval_shape(lambda: GPTBert(model_cfg, rngs=nnx.Rngs(0)))
  return nnx.to_pure_dict(nnx.state(model))


def params_to_tensors(params) -> dict[str, np.ndarray]:
  """The PyTorch state dict (numpy float32) of a JAX params dict."""
  tensors = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name, kernel = _hf_name(path)
    array = np.asarray(jax.device_get(leaf), np.float32)
    # A writable C-ordered copy: torch.from_numpy wants one, and safetensors writes rows.
    tensors[name] = np.array(array.T if kernel else array, order="C", copy=True)
  return tensors


def tensors_to_params(tensors: dict, model_cfg, where: str) -> dict:
  """A JAX params dict (TrainState layout) from a PyTorch state dict; checks every name and
  shape."""
  def take(path, abstract):
    name, kernel = _hf_name(path)
    if name not in tensors:
      raise DataError(f"'{where}' lacks the weight '{name}'; re-export the model with "
                      f"--mode=export.")
    array = tensors[name]
    array = array.T if kernel else array
    if tuple(array.shape) != tuple(abstract.shape):
      raise DataError(f"'{where}' holds '{name}' of shape {tuple(array.shape)} where the "
                      f"config needs {tuple(abstract.shape)}; re-export the model.")
    return jax.numpy.asarray(np.ascontiguousarray(array, dtype=np.float32))
  return jax.tree_util.tree_map_with_path(take, abstract_params(model_cfg))


def model_fields_from_hf(folder) -> dict:
  """The config.model fields that an export folder's config.json describes.

  Raises ConfigError when the folder holds no babylm_jax GPT-BERT export.
  """
  path = pathlib.Path(folder) / "config.json"
  if not path.is_file():
    raise ConfigError(f"'{folder}' holds no config.json; point --config.init.from_hf at a "
                      f"folder written by --mode=export.")
  try:
    cfg = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    raise ConfigError(f"'{path}' is not valid JSON; point --config.init.from_hf at a folder "
                      f"written by --mode=export.") from None
  kind = cfg.get("model_type") if isinstance(cfg, dict) else None
  if kind != MODEL_TYPE or any(theirs not in cfg and ours not in LATER_MODEL_FIELDS
                               for ours, theirs in FIELDS):
    raise ConfigError(f"'{path}' describes a {kind or 'unknown'!r} model, not a babylm_jax "
                      f"GPT-BERT; point --config.init.from_hf at a folder written by "
                      f"--mode=export.")
  defaults = base_config().model  # for exports written before a field existed
  return {ours: cfg.get(theirs, defaults[ours]) for ours, theirs in FIELDS}


def load_from_hf(folder, config) -> dict:
  """The params dict (TrainState layout, float32) of an export folder, for `config.model`.

  Raises ConfigError when the folder is not a babylm_jax export or describes another model
  shape than `config.model`, DataError when its weights are missing or do not fit.
  """
  from safetensors import SafetensorError
  from safetensors.numpy import load_file
  folder = pathlib.Path(str(folder))
  if not folder.is_dir():
    raise ConfigError(f"init.from_hf '{folder}' is not a folder; point it at a folder written "
                      f"by --mode=export.")
  fields = model_fields_from_hf(folder)
  for k, v in fields.items():
    if v != config.model[k]:
      raise ConfigError(f"'{folder}/config.json' has model.{k}={v!r} but the config says "
                        f"{config.model[k]!r}; pass --config.model.{k}={v}.")
  weights = folder / "model.safetensors"
  if not weights.is_file():
    raise DataError(f"'{folder}' holds no model.safetensors (babylm_jax reads safetensors "
                    f"only, never pickled weights); re-export the model with --mode=export.")
  try:
    tensors = load_file(str(weights))
  except (SafetensorError, OSError, ValueError) as err:
    raise DataError(f"'{weights}' cannot be read as safetensors "
                    f"({str(err).splitlines()[0][:80]}); re-export the model.") from None
  return tensors_to_params(tensors, config.model, str(weights))
