"""Export to, and import from, the Hugging Face folder layout the BabyLM pipeline loads.

An export folder holds `config.json` (with `auto_map` entries for `trust_remote_code=True`),
`model.safetensors`, the PyTorch implementation (`modeling_gpt_bert.py`,
`configuration_gpt_bert.py`, copied from this package) and the tokenizer
(`tokenizer.json` with a post-processor that prepends `<s>`, `tokenizer_config.json`,
`special_tokens_map.json`). With `export.milestones` every BabyLM milestone of the run is
exported as well, into `chck_<N>M/` sub-folders named like the challenge's Hub revisions.

Weights go through safetensors only (numpy in and out): nothing here unpickles. Kernels are
stored [in, out] in JAX and [out, in] in PyTorch; transposing float32 is exact, so
export -> `load_from_hf` gives back every parameter bit for bit.

Everything is written into a temporary sibling folder and renamed into place, so a failed
export never leaves a folder that looks valid.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil

import jax
import numpy as np

from babylm_jax.config import (BOS_ID, EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID)
from babylm_jax.errors import ConfigError, DataError, UserError
from babylm_jax.workdir import is_disk_full

MODEL_TYPE = "babylm_gpt_bert"
CODE_FILES = ("modeling_gpt_bert.py", "configuration_gpt_bert.py")
AUTO_MAP = {
    "AutoConfig": "configuration_gpt_bert.GptBertConfig",
    "AutoModel": "modeling_gpt_bert.GptBertModel",
    "AutoModelForCausalLM": "modeling_gpt_bert.GptBertForCausalLM",
    "AutoModelForMaskedLM": "modeling_gpt_bert.GptBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_gpt_bert.GptBertForSequenceClassification",
}
# config.model field -> config.json field. All of them must agree for an import.
FIELDS = (("vocab_size", "vocab_size"), ("hidden_size", "hidden_size"),
          ("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"),
          ("intermediate_size", "intermediate_size"),
          ("position_bucket_size", "position_bucket_size"),
          ("max_position", "max_position_embeddings"), ("layer_norm_eps", "layer_norm_eps"),
          ("layer_weighting", "layer_weighting"))


# ---------------------------------------------------------------------------------------
# Parameter names: the JAX params dict <-> the PyTorch state dict.


def _hf_name(path: tuple) -> tuple[str, bool]:
  """(PyTorch parameter name, whether the array is a kernel to transpose) of a params path."""
  keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
  if keys[0] == "head_module":
    prefix = ["head"] + keys[1:]
  elif keys[0] == "embedding" and keys[1].startswith("relative_norm_"):
    prefix = ["model", "embedding", "relative_norm",
              {"scale": "weight", "bias": "bias"}[keys[1][len("relative_norm_"):]]]
  elif keys[0] == "embedding" and keys[1] == "word":
    prefix = ["model", "embedding", "word", "weight"]
  else:
    prefix = ["model"] + keys
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


# ---------------------------------------------------------------------------------------
# config.json and the tokenizer files.


def hf_config(model_cfg, info: dict | None = None) -> dict:
  cfg = {"architectures": ["GptBertForCausalLM", "GptBertForMaskedLM"],
         "model_type": MODEL_TYPE, "auto_map": dict(AUTO_MAP)}
  for ours, theirs in FIELDS:
    cfg[theirs] = model_cfg[ours]
  cfg.update(hidden_dropout_prob=float(model_cfg.dropout), classifier_dropout=0.1,
             pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
             mask_token_id=MASK_ID, dtype="float32", torch_dtype="float32")
  if info:
    cfg["babylm_jax"] = info
  return cfg


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
  if kind != MODEL_TYPE or any(theirs not in cfg for _, theirs in FIELDS):
    raise ConfigError(f"'{path}' describes a {kind or 'unknown'!r} model, not a babylm_jax "
                      f"GPT-BERT; point --config.init.from_hf at a folder written by "
                      f"--mode=export.")
  return {ours: cfg[theirs] for ours, theirs in FIELDS}


def _write_tokenizer(tokenizer_path: pathlib.Path, out: pathlib.Path, max_length: int):
  """tokenizer.json that prepends <s>, and the two files AutoTokenizer reads beside it."""
  import tokenizers
  from tokenizers import processors
  tok = tokenizers.Tokenizer.from_file(str(tokenizer_path))
  bos, eos = SPECIAL_TOKENS[BOS_ID], SPECIAL_TOKENS[EOS_ID]
  tok.post_processor = processors.TemplateProcessing(
      single=f"{bos} $A", pair=f"{bos} $A {eos} $B:1",
      special_tokens=[(bos, BOS_ID), (eos, EOS_ID)])
  tok.no_padding()
  tok.no_truncation()
  (out / "tokenizer.json").write_text(tok.to_str(pretty=True))
  special = dict(bos_token=bos, eos_token=eos, unk_token=SPECIAL_TOKENS[UNK_ID],
                 pad_token=SPECIAL_TOKENS[PAD_ID], mask_token=SPECIAL_TOKENS[MASK_ID],
                 cls_token=bos, sep_token=eos)
  tok_cfg = dict(tokenizer_class="PreTrainedTokenizerFast", model_max_length=max_length,
                 padding_side="right", clean_up_tokenization_spaces=False, **special)
  (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
  (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def write_folder(out: pathlib.Path, params, model_cfg, tokenizer_path, info: dict):
  """Writes one complete export (weights, config, code, tokenizer) into an existing folder."""
  from safetensors.numpy import save_file
  save_file(params_to_tensors(params), str(out / "model.safetensors"),
            metadata={"format": "pt"})
  (out / "config.json").write_text(json.dumps(hf_config(model_cfg, info), indent=2))
  here = pathlib.Path(__file__).resolve().parent
  for name in CODE_FILES:
    shutil.copyfile(here / name, out / name)
  _write_tokenizer(pathlib.Path(tokenizer_path), out, int(model_cfg.max_position))


def milestone_folder(words: int) -> str:
  """The sub-folder of a milestone, named like the challenge's Hub revisions (chck_10M)."""
  return f"chck_{words // 1_000_000}M" if words % 1_000_000 == 0 else f"words_{words}"


# ---------------------------------------------------------------------------------------
# --mode=export and --config.init.from_hf.


def _is_export(folder: pathlib.Path) -> bool:
  try:
    return json.loads((folder / "config.json").read_text()).get("model_type") == MODEL_TYPE
  except (OSError, ValueError, AttributeError):
    return False


def _check_out(out: pathlib.Path, overwrite: bool):
  if out.exists() and not out.is_dir():
    raise UserError(f"export.dir '{out}' is a file; pass a folder path to "
                    f"--config.export.dir.")
  if not out.exists() or not any(out.iterdir()):
    return
  if not overwrite:
    raise UserError(f"export.dir '{out}' is not empty; pass --config.export.overwrite=True "
                    f"to replace it or choose another folder.")
  if not _is_export(out):
    # Overwriting deletes the folder: only ever do that to an earlier export.
    raise UserError(f"export.dir '{out}' holds files that are not a babylm_jax export (no "
                    f"config.json of a {MODEL_TYPE} model), so it is not replaced even with "
                    f"export.overwrite; choose another folder.")


def _params_of(model):
  from flax import nnx
  return nnx.to_pure_dict(nnx.state(model))


def run_export(config, workdir) -> str:
  """--mode=export: writes export.dir from a run's checkpoint; returns the folder."""
  from babylm_jax.train.checkpoint import Checkpointer, load_model
  e = config.export
  if not e.dir:
    raise ConfigError("export.dir is empty; pass --config.export.dir=OUT, the folder to "
                      "write the Hugging Face model to.")
  if e.step is not None and e.words is not None:
    raise ConfigError("export.step and export.words are both set; pass only one of them.")
  if str(e.dir).startswith("gs://"):
    raise ConfigError("export.dir must be a local folder; export there, then copy it.")
  out = pathlib.Path(e.dir).resolve()
  _check_out(out, e.overwrite)
  wd = pathlib.Path(str(workdir))
  tokenizer_path = wd / "tokenizer.json"

  model, info = load_model(config, str(workdir), step=e.step, words=e.words,
                           use_ema=e.use_ema)
  if not tokenizer_path.is_file():
    raise DataError(f"workdir '{workdir}' holds no tokenizer.json; export the run's own "
                    f"--workdir (training writes it there).")
  milestones = []
  if e.milestones:
    ckpt = Checkpointer(str(workdir), config, read_only=True)
    try:
      milestones = ckpt.milestone_words()
    finally:
      ckpt.close()

  tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
      shutil.rmtree(tmp)
    tmp.mkdir()
  except OSError as err:
    raise _write_error(out, err) from None
  try:
    write_folder(tmp, _params_of(model), config.model, tokenizer_path, _info(info))
    for words in milestones:
      m_model, m_info = load_model(config, str(workdir), words=words, use_ema=e.use_ema)
      sub = tmp / milestone_folder(words)
      sub.mkdir()
      write_folder(sub, _params_of(m_model), config.model, tokenizer_path, _info(m_info))
    _swap_into_place(tmp, out)
  except BaseException as err:
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(err, OSError) or is_disk_full(err):
      raise _write_error(out, err) from None
    raise
  logging.info("exported %s (step %s, %s words seen%s) to %s", info["path"], info.get("step"),
               info.get("words_seen"),
               f", {len(milestones)} milestones" if milestones else "", out)
  return str(out)


def _write_error(out: pathlib.Path, err: BaseException) -> UserError:
  """Nothing was left at `out`; one sentence saying why and what to do."""
  reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:120]
  fix = "free space there" if is_disk_full(err) else "make it writable for this user"
  return UserError(f"export.dir '{out}' could not be written ({reason}) and nothing was left "
                   f"there; {fix} or choose another --config.export.dir.")


def _info(info: dict) -> dict:
  keys = ("step", "words_seen", "tokens_seen", "use_ema", "path")
  return {k: info[k] for k in keys if k in info}


def _swap_into_place(tmp: pathlib.Path, out: pathlib.Path):
  """Renames the finished tmp folder to out; an old out is moved aside first, then removed."""
  old = None
  if out.exists():
    if any(out.iterdir()):
      old = out.parent / f".{out.name}.old-{os.getpid()}"
      out.rename(old)
    else:
      out.rmdir()
  tmp.rename(out)
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


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
