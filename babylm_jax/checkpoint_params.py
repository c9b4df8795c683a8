"""Loading a trained model from a workdir: its parameters only, for every reader of a run.

Evaluation, fine-tuning, export and generation need the (EMA or raw) parameters of one
checkpoint, never the optimizer state. `load_params` reads the checkpoint's `meta` first and
refuses a mismatched run (model shape, objective, tokenizer) in one sentence, then restores
only the `params` or `ema_params` subtree of the saved `state` item with orbax's partial
restore: the Adam moments, the other copy of the parameters and a teacher are never read from
disk nor allocated. Training itself (train/checkpoint.py) writes the checkpoints and restores
the whole train state; the checks on `meta` are shared from here.

This module sits below train/, eval/ and export/ and imports none of them.
"""

from __future__ import annotations

import hashlib
import os

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from babylm_jax.config import LATER_MODEL_FIELDS, base_config
from babylm_jax.errors import UserError
from babylm_jax.mesh import logical_to_sharding, make_mesh
from babylm_jax.model.gpt_bert import GPTBert

# Model fields that change parameter shapes or meaning; a checkpoint must agree on all of them.
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                "position_bucket_size", "max_position", "layer_weighting", "attention",
                "position", "normformer", "ffn", "decoder_layers", "final_norm")
# A checkpoint without an architecture switch (config.LATER_MODEL_FIELDS) has its default;
# one without max_position, which shaped no parameter before learned absolute positions, is
# not checked on it.

ITEMS = ("state", "meta")  # the items of every checkpoint (train/checkpoint.py saves them)


def absolute(workdir) -> epath.Path:
  """The workdir as orbax needs it: local paths made absolute, bucket paths as they are."""
  if "://" in str(workdir):
    return epath.Path(workdir)
  return epath.Path(os.path.abspath(workdir))


def tokenizer_sha256(tokenizer) -> str:
  """A hash of a `tokenizers.Tokenizer`'s serialised form (the same on every process)."""
  return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


def tokenizer_file_sha256(path) -> str:
  from tokenizers import Tokenizer
  return tokenizer_sha256(Tokenizer.from_str(epath.Path(path).read_text()))


def check_meta(meta: dict, config, tokenizer_sha: str | None, where: str,
               data_key: str | None = None):
  """Refuses a checkpoint whose model shape, objective, tokenizer or training data differs."""
  model, defaults = meta.get("model", {}), base_config().model
  for k in SHAPE_FIELDS:
    if k == "max_position" and k not in model:
      continue
    saved = model.get(k, defaults[k] if k in LATER_MODEL_FIELDS else None)
    if saved != config.model[k]:
      raise UserError(f"the checkpoint in {where} has model.{k}={saved!r} but the config says "
                      f"{config.model[k]!r}; use the run's own config or a fresh --workdir.")
  # Checkpoints from before objective.kind existed were trained with the hybrid objective.
  saved = meta.get("objective", "hybrid")
  if saved != config.objective.kind:
    raise UserError(f"the checkpoint in {where} was trained with objective.kind={saved!r} but "
                    f"the config says {config.objective.kind!r}; use the run's own config or a "
                    f"fresh --workdir.")
  if tokenizer_sha and meta.get("tokenizer_sha256") not in (None, tokenizer_sha):
    raise UserError(f"the checkpoint in {where} was trained with a different tokenizer than "
                    f"this config gives; use the run's own data and tokenizer settings or a "
                    f"fresh --workdir.")
  if data_key and meta.get("data_key") not in (None, data_key):
    raise UserError(f"the checkpoint in {where} was trained on other data (data.path or "
                    f"data.languages' text, data.language_words, data.dev_path/dev_fraction or "
                    f"data.clean differ); use the run's own data settings or a fresh --workdir.")


def _is_variable(x):
  return isinstance(x, nnx.Variable)


def abstract_model(config):
  """(graphdef, logical axes tree, ShapeDtypeStruct tree) of the parameters; allocates nothing."""
  model = nnx.eval_shape(lambda: GPTBert(config.model, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  axes = nnx.to_pure_dict(jax.tree.map(lambda v: v.axes, state, is_leaf=_is_variable))
  return graphdef, axes, nnx.to_pure_dict(state)


def abstract_params(config, mesh):
  """(graphdef, the parameters as ShapeDtypeStructs carrying their shardings on `mesh`)."""
  graphdef, axes, abstract = abstract_model(config)
  shardings = logical_to_sharding(axes, abstract, mesh, config.mesh.rules)
  return graphdef, jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def _manager(workdir: epath.Path, milestone: bool) -> ocp.CheckpointManager:
  folder, prefix = ("milestones", "words") if milestone else ("checkpoints", None)
  return ocp.CheckpointManager(
      workdir / folder, item_names=ITEMS,
      options=ocp.CheckpointManagerOptions(step_prefix=prefix, create=False, read_only=True,
                                           cleanup_tmp_directories=False))


def pick_checkpoint(workdir, *, step: int | None = None, words: int | None = None):
  """(key, milestone, path) of the checkpoint a reader asked for: the milestone named by
  `words`, else rolling checkpoint `step`, else the newest rolling one (UserError if absent)."""
  workdir = absolute(workdir)
  if not (workdir / "checkpoints").exists() and not (workdir / "milestones").exists():
    raise UserError(f"workdir '{workdir}' holds no checkpoints; train first with "
                    f"--mode=train or pass the run's --workdir.")
  if words is not None:
    saved = saved_keys(workdir, milestone=True)
    if words not in saved:
      raise UserError(f"no milestone at {words} words in '{workdir}'; those saved are "
                      f"{saved or 'none'}.")
    return words, True, workdir / f"milestones/words_{words}"
  steps = saved_keys(workdir, milestone=False)
  if not steps:
    raise UserError(f"workdir '{workdir}' holds no rolling checkpoints; train first or "
                    f"pick a milestone with words=N.")
  if step is not None and step not in steps:
    raise UserError(f"no checkpoint at step {step} in '{workdir}'; those kept are {steps}.")
  key = step if step is not None else steps[-1]
  return key, False, workdir / f"checkpoints/{key}"


def saved_keys(workdir, milestone: bool) -> list[int]:
  """The steps of the rolling checkpoints, or the words of the milestones, sorted."""
  workdir = absolute(workdir)
  if not (workdir / ("milestones" if milestone else "checkpoints")).exists():
    return []
  mngr = _manager(workdir, milestone)
  try:
    return sorted(mngr.all_steps())
  finally:
    mngr.close()


def load_params(config, workdir, *, step: int | None = None, words: int | None = None,
                use_ema: bool = True, mesh=None):
  """(graphdef, params, info) of one checkpoint of a run, parameters only.

  Which checkpoint: see pick_checkpoint. `params` is the plain dict of the EMA parameters
  (`use_ema`) or the raw ones, laid out on `mesh` (by default config.mesh over every device).
  info holds the checkpoint's meta (step, words_seen, tokens_seen, ...), its path and use_ema.
  """
  workdir = absolute(workdir)
  key, milestone, where = pick_checkpoint(workdir, step=step, words=words)
  mngr = _manager(workdir, milestone)
  try:
    meta = mngr.restore(key, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    tok = workdir / "tokenizer.json"
    check_meta(meta, config, tokenizer_file_sha256(tok) if tok.exists() else None, str(where))
    graphdef, target = abstract_params(config, mesh if mesh is not None else make_mesh(config))
    name = "ema_params" if use_ema else "params"
    item = {name: target}
    # Partial restore: only the leaves named in `item` are read; the rest of the saved train
    # state (optimizer moments, the other parameter copy, step, teacher) is skipped.
    restored = mngr.restore(key, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True)))["state"]
  finally:
    mngr.close()
  return graphdef, restored[name], dict(meta, path=str(where), use_ema=use_ema)


def load_model(config, workdir, *, step: int | None = None, words: int | None = None,
               use_ema: bool = True, mesh=None):
  """(GPTBert, info): load_params' parameters merged into the network."""
  graphdef, params, info = load_params(config, workdir, step=step, words=words,
                                       use_ema=use_ema, mesh=mesh)
  return nnx.merge(graphdef, params), info
