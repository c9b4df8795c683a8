"""Orbax checkpoints: rolling saves, BabyLM milestones by words seen, resume and loading.

Layout in a workdir:
  checkpoints/<step>/          rolling, asynchronous, the newest `checkpoint.keep` kept
  milestones/words_<N>/        BabyLM milestones, kept for good, named by words seen
Each checkpoint holds `state` (the TrainState: params, EMA params, optimizer state, step, and
the objective's teacher when it keeps one) and `meta` (JSON: step, words and tokens seen, the
model config, the objective and the tokenizer's hash), which is read first so that a
mismatched run is refused before any array is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import resource
import shutil

import jax
import orbax.checkpoint as ocp
from etils import epath

from babylm_jax import checkpoint_params
# The checks on a checkpoint's meta are shared with the params-only loader; re-exported here.
from babylm_jax.checkpoint_params import (SHAPE_FIELDS, absolute, check_meta,  # noqa: F401
                                          tokenizer_file_sha256, tokenizer_sha256)
from babylm_jax.config import order_domains, word_unit
from babylm_jax.data.languages import mixture
from babylm_jax.errors import UserError
from babylm_jax.workdir import is_disk_full

# BabyLM milestones: every 1M words to 10M, every 10M to 100M, every 100M to 1B.
MILESTONES = tuple(sorted({m * 1_000_000 for m in range(1, 11)}
                          | {m * 10_000_000 for m in range(1, 11)}
                          | {m * 100_000_000 for m in range(1, 11)}))


def milestones_crossed(words_before: int, words_after: int) -> list[int]:
  """Milestones reached by a step that took words seen from words_before to words_after."""
  return [m for m in MILESTONES if words_before < m <= words_after]


def make_meta(config, step: int, words_seen: int, tokens_seen: int, tokenizer_sha: str,
              data_key: str | None = None, teachers: list[dict] | None = None) -> dict:
  meta = dict(step=int(step), words_seen=int(words_seen), tokens_seen=int(tokens_seen),
              model={k: config.model[k] for k in SHAPE_FIELDS},
              objective=config.objective.kind, tokenizer_sha256=tokenizer_sha,
              data_key=data_key, data_order=data_order(config), languages=mixture(config),
              word_unit=word_unit(config))
  if teachers:  # distillation: the teachers' workdirs and parameter hashes (train/distill.py)
    meta["distill_teachers"] = teachers
  return meta


def data_order(config) -> str:
  """data.order with the settings it reads: what a resumed run must read the same way."""
  d = config.data
  if d.order == "domains":
    return f"domains:{','.join(order_domains(d))}"
  if d.order == "difficulty":
    return f"difficulty:{d.order_buckets}"
  return str(d.order)


def check_resume_order(meta: dict, config, where: str):
  """Refuses to resume a run in another data.order or with other languages or shares: its
  steps would read other rows (eval and export do not care)."""
  saved = meta.get("data_order", "shuffled")  # checkpoints from before data.order: shuffled
  if saved != data_order(config):
    raise UserError(f"the checkpoint in {where} was trained with data.order {saved!r} but the "
                    f"config says {data_order(config)!r}; use the run's own data.order* settings "
                    f"or a fresh --workdir.")
  # The languages fix the unit too (English-equivalent words on their track, whitespace
  # words off it). Checkpoints written before this record have none: data_key still refuses
  # other text for them, once prepare has run.
  saved, wanted = meta.get("languages"), mixture(config)
  if saved is not None and saved != wanted:
    raise UserError(f"the checkpoint in {where} was trained on the languages and shares "
                    f"{saved or 'none'!r} ({meta.get('word_unit', 'words')}) but the config "
                    f"gives {wanted or 'none'!r} ({word_unit(config)}); use the run's own "
                    f"track, data.languages and data.language_shares, or a fresh --workdir.")


class Checkpointer:
  """The rolling and milestone managers of one workdir."""

  def __init__(self, workdir, config, *, read_only: bool = False):
    self.workdir = absolute(workdir)
    self.config = config
    opts = dict(create=not read_only, cleanup_tmp_directories=not read_only,
                enable_async_checkpointing=True, read_only=read_only)
    self.rolling = ocp.CheckpointManager(
        self.workdir / "checkpoints", item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(max_to_keep=config.checkpoint.keep, **opts))
    self.milestones = ocp.CheckpointManager(
        self.workdir / "milestones", item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(step_prefix="words", **opts))

  # -- saving ---------------------------------------------------------------------------
  def save(self, state, meta: dict, *, milestone_words: int | None = None):
    stored = _stored(state)
    args = ocp.args.Composite(state=ocp.args.StandardSave(stored), meta=ocp.args.JsonSave(meta))
    with self._disk_errors():
      self._check_room(stored)
      if milestone_words is None:
        self.rolling.save(meta["step"], args=args, force=True)
      else:
        self.milestones.save(milestone_words, args=args, force=True)

  def wait(self):
    with self._disk_errors():
      self.rolling.wait_until_finished()
      self.milestones.wait_until_finished()

  def _check_room(self, stored):
    """Refuses a save that cannot fit before it starts: a save that fails halfway leaves
    tensorstore's pending writes calling into a closed event loop, which prints dozens of
    tracebacks around the one-line error. Local disks only (free space, and the largest file
    the process may write); an object store is left to report its own errors."""
    if not os.path.isdir(str(self.workdir)):
      return
    need = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(stored))
    room = shutil.disk_usage(str(self.workdir)).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
      room = min(room, limit)
    if need > room:
      raise OSError(errno.ENOSPC, f"No space left: {need:,} bytes to write, {room:,} free")

  @contextlib.contextmanager
  def _disk_errors(self):
    """A save that fails for want of space (now or in the background) as one sentence."""
    try:
      yield
    except UserError:
      raise
    except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise several kinds
      if not is_disk_full(e) and not isinstance(e, OSError):
        raise
      saved = self.steps()
      fix = "free space there" if is_disk_full(e) else "make it writable for this user"
      raise UserError(
          f"a checkpoint could not be written to '{self.workdir}' ({_short(e)[:120]}); {fix} "
          f"(or use another --workdir) and run the same command again to resume from "
          f"{f'step {saved[-1]}' if saved else 'the start'}.") from None

  @staticmethod
  def discard(workdir) -> epath.Path | None:
    """checkpoint.restart: moves a previous run's outputs into discarded/<time>/."""
    import datetime
    workdir = absolute(workdir)
    names = ("checkpoints", "milestones", "damaged_checkpoints", "metrics.jsonl", "tb", "plots",
             "eval", "finetune")
    present = [n for n in names if (workdir / n).exists()]
    if not present or jax.process_index() != 0:
      return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    dst = workdir / "discarded" / stamp
    dst.mkdir(parents=True, exist_ok=True)
    for n in present:
      (workdir / n).rename(dst / n)
    return dst

  def close(self):
    self.rolling.close()
    self.milestones.close()

  # -- reading --------------------------------------------------------------------------
  def steps(self) -> list[int]:
    return sorted(self.rolling.all_steps())

  def milestone_words(self) -> list[int]:
    return sorted(self.milestones.all_steps())

  def read_meta(self, step: int, *, milestone: bool = False) -> dict:
    mngr = self.milestones if milestone else self.rolling
    return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int, abstract_state, *, milestone: bool = False):
    mngr = self.milestones if milestone else self.rolling
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_stored(abstract_state)), meta=ocp.args.JsonRestore()))
    return abstract_state.replace(**out["state"]), out["meta"]

  def _set_aside(self, step: int):
    """Moves a damaged checkpoint out of the manager's folder (kept for inspection)."""
    if jax.process_index() == 0:
      src = self.workdir / "checkpoints" / str(step)
      dst = self.workdir / "damaged_checkpoints" / str(step)
      dst.parent.mkdir(parents=True, exist_ok=True)
      if dst.exists():
        shutil.rmtree(dst)
      src.rename(dst)
    self.rolling.reload()

  def newest_meta(self) -> dict | None:
    """The metadata of the newest rolling checkpoint, or None (none, or unreadable)."""
    steps = self.steps()
    if not steps:
      return None
    try:
      return self.read_meta(steps[-1])
    except Exception:  # noqa: BLE001 - damaged: restore_latest deals with it
      return None

  def restore_latest(self, abstract_state, tokenizer_sha: str | None,
                     data_key: str | None = None):
    """The newest complete checkpoint, falling back past damaged ones; None if there is none.

    A checkpoint of a different model, tokenizer or data is refused (UserError), never
    skipped. Damaged checkpoints newer than the one restored are moved to
    damaged_checkpoints/; when every checkpoint is damaged nothing is moved and the run stops
    (UserError): it never starts again from step 0 on its own.
    """
    damaged = []
    for step in reversed(self.steps()):
      where = str(self.workdir / "checkpoints" / str(step))
      try:
        meta = self.read_meta(step)
      except Exception as e:  # noqa: BLE001 - unreadable metadata: damaged
        damaged.append((step, where, e))
        continue
      check_meta(meta, self.config, tokenizer_sha, where, data_key)
      check_resume_order(meta, self.config, where)
      try:
        state, meta = self.restore(step, abstract_state)
        jax.block_until_ready(state)
      except Exception as e:  # noqa: BLE001 - unreadable arrays: damaged
        damaged.append((step, where, e))
        continue
      for bad_step, bad_where, e in damaged:
        logging.warning("checkpoint %s is damaged (%s); moved it to damaged_checkpoints/ and "
                        "resumed from step %d.", bad_where, _short(e), step)
        self._set_aside(bad_step)
      return state, meta
    if damaged:
      raise UserError(
          f"every checkpoint in '{self.workdir / 'checkpoints'}' is damaged (steps "
          f"{', '.join(str(s) for s, _, _ in reversed(damaged))}; newest: "
          f"{_short(damaged[0][2])[:100]}); nothing was changed. To start over pass "
          f"--config.checkpoint.restart=True, or use a new --workdir.")
    return None


def _stored(state) -> dict:
  """The TrainState as it is written: its fields, without an empty teacher, so that the
  objectives without one keep the layout of the checkpoints written before teachers existed."""
  tree = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
  if not tree["teacher"]:
    del tree["teacher"]
  return tree


def _short(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def load_model(config, workdir, *, step: int | None = None, words: int | None = None,
               use_ema: bool = True):
  """(GPTBert, info): kept for callers of the old name; the parameters are read by the
  params-only loader, babylm_jax/checkpoint_params.py."""
  return checkpoint_params.load_model(config, workdir, step=step, words=words, use_ema=use_ema)
