"""Export to the Hugging Face folder layout the BabyLM pipeline loads.

An export folder holds `config.json` (with `auto_map` entries for `trust_remote_code=True`),
`model.safetensors`, the PyTorch implementation (`modeling_gpt_bert.py`,
`configuration_gpt_bert.py`, copied from this package) and the tokenizer
(`tokenizer.json` with a post-processor that prepends `<s>`, `tokenizer_config.json`,
`special_tokens_map.json`). With `export.milestones` every BabyLM milestone of the run is
exported as well, into `chck_<N>M/` sub-folders named like the challenge's Hub revisions.

The parameter names and the way back (`load_from_hf`, for `--config.init.from_hf`) are in
babylm_jax/model/hf_weights.py: weights go through safetensors only, and export ->
`load_from_hf` gives back every parameter bit for bit.

Everything is written into a temporary sibling folder and renamed into place, so a failed
export never leaves a folder that looks valid.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil

from babylm_jax import file_modes
from babylm_jax.config import (BOS_ID, EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID)
from babylm_jax.errors import ConfigError, DataError, UserError
# load_from_hf is the export's way back; it lives below train/ and export/ (both use it).
from babylm_jax.model.hf_weights import (FIELDS, MODEL_TYPE, load_from_hf,  # noqa: F401
                                         params_to_tensors)
from babylm_jax.workdir import is_disk_full

CODE_FILES = ("modeling_gpt_bert.py", "configuration_gpt_bert.py")
AUTO_MAP = {
    "AutoConfig": "configuration_gpt_bert.GptBertConfig",
    "AutoModel": "modeling_gpt_bert.GptBertModel",
    "AutoModelForCausalLM": "modeling_gpt_bert.GptBertForCausalLM",
    "AutoModelForMaskedLM": "modeling_gpt_bert.GptBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_gpt_bert.GptBertForSequenceClassification",
}
# objective.kind -> the language-model classes its export offers: GPT-BERT both, a masked-only
# model the masked LM (the pipeline's `mlm` backend: logits at i score token i), a causal-only
# model the causal LM. The others' Auto classes are left out of auto_map, so that loading one
# fails instead of scoring with a head that was never trained that way.
LM_CLASSES = {"hybrid": ("AutoModelForCausalLM", "AutoModelForMaskedLM"),
              "masked": ("AutoModelForMaskedLM",), "bootstrap": ("AutoModelForMaskedLM",),
              "causal": ("AutoModelForCausalLM",)}


# ---------------------------------------------------------------------------------------
# config.json and the tokenizer files.


def hf_config(model_cfg, info: dict | None = None, objective: str = "hybrid") -> dict:
  lm = LM_CLASSES[objective]
  auto_map = {k: v for k, v in AUTO_MAP.items()
              if k in lm or k not in ("AutoModelForCausalLM", "AutoModelForMaskedLM")}
  cfg = {"architectures": [AUTO_MAP[k].split(".")[1] for k in lm],
         "model_type": MODEL_TYPE, "auto_map": auto_map, "objective": objective}
  for ours, theirs in FIELDS:
    cfg[theirs] = model_cfg[ours]
  cfg.update(hidden_dropout_prob=float(model_cfg.dropout),
             head_dropout_prob=float(model_cfg.head_dropout), classifier_dropout=0.1,
             pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
             mask_token_id=MASK_ID, dtype="float32", torch_dtype="float32")
  if info:
    cfg["babylm_jax"] = info
  return cfg


def _prefix_space(tok) -> dict:
  """{'add_prefix_space': ...} of a byte-level pre-tokenizer, for tokenizer_config.json.

  transformers 4.x (the BabyLM pipeline pins 4.51.3) resets a top-level pre-tokenizer's
  add_prefix_space to the tokenizer_config value, False when absent, so it must be written
  there as tokenizer.json has it. Inside a Sequence, 4.x leaves it alone.
  """
  state = json.loads(tok.pre_tokenizer.__getstate__()) if tok.pre_tokenizer else {}
  return {"add_prefix_space": state["add_prefix_space"]} if "add_prefix_space" in state else {}


# After an unconditional Prepend(" "), two spaces at the very start become one: a text that
# already starts with a space gets no second one, as ByteLevel(add_prefix_space=True) behaves.
SINGLE_PREFIX_SPACE = {"type": "Replace", "pattern": {"Regex": "\\A  "}, "content": " "}


def _single_prefix_space(tokenizer_json: str) -> str:
  """The run's tokenizer.json, with SINGLE_PREFIX_SPACE after a Prepend(" ") normalizer (the
  multilingual tokenizers, tokenizer.split_cjk). The same ids for every text that does not start
  with a space, which is all we train on and score; lm-eval's multiple_choice puts a " " before
  each sentence (its default target_delimiter), which must not become a token of its own."""
  spec = json.loads(tokenizer_json)
  steps = (spec.get("normalizer") or {}).get("normalizers", [])
  for i, step in enumerate(steps):
    if step == {"type": "Prepend", "prepend": " "} and SINGLE_PREFIX_SPACE not in steps:
      steps.insert(i + 1, SINGLE_PREFIX_SPACE)
      break
  return json.dumps(spec)


def _write_tokenizer(tokenizer_path: pathlib.Path, out: pathlib.Path, max_length: int):
  """tokenizer.json and the two files AutoTokenizer reads beside it.

  One text becomes `<s> a` (how the scorer reads a sentence), a pair `<s> a </s> b </s>` (how
  fine-tuning reads a pair).
  """
  import tokenizers
  from babylm_jax.data.tokenizer import framed
  tok = framed(tokenizers.Tokenizer.from_str(_single_prefix_space(tokenizer_path.read_text())))
  bos, eos = SPECIAL_TOKENS[BOS_ID], SPECIAL_TOKENS[EOS_ID]
  (out / "tokenizer.json").write_text(tok.to_str(pretty=True))
  special = dict(bos_token=bos, eos_token=eos, unk_token=SPECIAL_TOKENS[UNK_ID],
                 pad_token=SPECIAL_TOKENS[PAD_ID], mask_token=SPECIAL_TOKENS[MASK_ID],
                 cls_token=bos, sep_token=eos)
  tok_cfg = dict(tokenizer_class="PreTrainedTokenizerFast", model_max_length=max_length,
                 padding_side="right", clean_up_tokenization_spaces=False, **_prefix_space(tok),
                 **special)
  (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
  (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def write_folder(out: pathlib.Path, params, model_cfg, tokenizer_path, info: dict,
                 objective: str = "hybrid"):
  """Writes one complete export (weights, config, code, tokenizer) into an existing folder."""
  from safetensors.numpy import save_file
  save_file(params_to_tensors(params), str(out / "model.safetensors"),
            metadata={"format": "pt"})
  (out / "config.json").write_text(json.dumps(hf_config(model_cfg, info, objective), indent=2))
  here = pathlib.Path(__file__).resolve().parent
  for name in CODE_FILES:
    shutil.copyfile(here / name, out / name)
  _write_tokenizer(pathlib.Path(tokenizer_path), out, int(model_cfg.max_position))
  file_modes.share(out)  # safetensors writes 0600; an export is for others to read


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
  from babylm_jax.checkpoint_params import load_model, saved_keys
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
  milestones = saved_keys(str(workdir), milestone=True) if e.milestones else []

  tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
      shutil.rmtree(tmp)
    tmp.mkdir()
  except OSError as err:
    raise _write_error(out, err) from None
  try:
    kind = config.objective.kind
    write_folder(tmp, _params_of(model), config.model, tokenizer_path, _info(info), kind)
    for words in milestones:
      m_model, m_info = load_model(config, str(workdir), words=words, use_ema=e.use_ema)
      sub = tmp / milestone_folder(words)
      sub.mkdir()
      write_folder(sub, _params_of(m_model), config.model, tokenizer_path, _info(m_info),
                   kind)
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
