"""The training run: from a config and a workdir to checkpoints, metrics and plots.

Sections: workdir (checked, locked) and data; BabyLM rules; mesh and state; resume (refused
before any file of the run changes); the loop (dispatch step t, then look at step t-1's
metrics, so the host never waits on the device); validation; checkpoints and milestones; the
end (final save, plots, a summary). The data position and the dropout keys come from the step
alone, so a resumed run repeats a straight run exactly. Ctrl-C and SIGTERM end the loop with a
checkpoint of the step in hand (see `babylm_jax.interrupts`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time

import jax
from etils import epath

from babylm_jax import config as config_lib
from babylm_jax import interrupts
from babylm_jax import versions as versions_lib
from babylm_jax import workdir as workdir_lib
from babylm_jax.errors import UserError
from babylm_jax.train import checkpoint as ckpt_lib
from babylm_jax.train.metrics import MetricsWriter, plot_losses


def check_rules(config, derived, words_planned: int):
  """BabyLM 2025: words seen may not exceed the track's cap (ten epochs of its budget), in
  the track's unit (English-equivalent words on the multilingual track)."""
  unit = config_lib.word_unit(config)
  if words_planned > derived.exposure_cap and not config.outside_rules:
    raise UserError(
        f"this run would show the model {words_planned:,} {unit} but the {config.track} track "
        f"caps training exposure at {derived.exposure_cap:,} {unit}; lower train.steps or "
        f"train.epochs, or set --config.outside_rules=True for a run outside the BabyLM rules.")


def _write_config(workdir: epath.Path, config, derived, corpus_manifest: str | None = None):
  if jax.process_index() != 0:
    return
  resolved = config_lib.to_dict(config)
  resolved["derived"] = dict(total_steps=derived.total_steps, warmup_steps=derived.warmup_steps,
                             cooldown_steps=derived.cooldown_steps,
                             phases=[vars(p) for p in derived.phases],
                             corpus_tokens=derived.corpus_tokens, corpus_words=derived.corpus_words)
  if corpus_manifest:  # data.path is a folder built by --mode=corpus: name its recipe's build
    resolved["derived"]["corpus_manifest_sha256"] = corpus_manifest
  tmp = workdir / "config.json.tmp"
  tmp.write_text(json.dumps(resolved, indent=2, default=str))
  tmp.replace(workdir / "config.json")


def derive_for_corpus(config, store):
  """derive() with the measured corpus: one epoch of the packed stream is every token plus
  one <s> per document."""
  return config_lib.derive(config, corpus_tokens=store.num_tokens + store.num_docs,
                           corpus_words=store.num_words)


def train(config, workdir) -> dict:
  """Trains (or resumes) a run; returns the last training and validation metrics."""
  config_lib.validate(config)
  if config.init.from_hf:
    # Check the folder before any data work, and train with its tokenizer (token ids must match).
    from babylm_jax.model.hf_weights import model_fields_from_hf
    model_fields_from_hf(config.init.from_hf)
    if not config.tokenizer.path:
      config.tokenizer.path = str(epath.Path(config.init.from_hf) / "tokenizer.json")
  workdir = workdir_lib.prepare(workdir)
  with workdir_lib.lock(workdir), contextlib.ExitStack() as closing:
    return _train(config, workdir, closing)


def _check_resumable(config, workdir):
  """Refuses, before any data work, a resume whose model shape or data order differs from the
  checkpoint's."""
  if config.checkpoint.restart or not (workdir / "checkpoints").exists():
    return
  ckpt = ckpt_lib.Checkpointer(workdir, config, read_only=True)
  try:
    steps, meta = ckpt.steps(), ckpt.newest_meta()
  finally:
    ckpt.close()
  if meta is not None:
    where = str(workdir / "checkpoints" / str(steps[-1]))
    ckpt_lib.check_meta(meta, config, None, where)
    ckpt_lib.check_resume_order(meta, config, where)


def _restart(workdir):
  """checkpoint.restart: the previous run's outputs move aside before step 0."""
  moved = ckpt_lib.Checkpointer.discard(workdir)
  if moved is not None:
    logging.warning("checkpoint.restart: moved the previous checkpoints, milestones and "
                    "metrics to %s; training from step 0.", moved)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("babylm_jax restart")


def _train(config, workdir: epath.Path, closing: contextlib.ExitStack) -> dict:
  from babylm_jax.data.batches import BatchSource
  from babylm_jax.data.prepare import prepare_data, warn_replaced
  from babylm_jax.train import curves as curves_lib, distill, flops, sharding, step as step_lib

  interrupts.reset()
  started = time.time()
  _check_resumable(config, workdir)
  prepared = prepare_data(config)  # the workdir's own files are written only once resumable
  if jax.process_index() == 0:
    warn_replaced(prepared.stats)
  derived = derive_for_corpus(config, prepared.train)
  pid, nproc = jax.process_index(), jax.process_count()
  source = BatchSource(prepared.train, config, derived, process_index=pid, process_count=nproc)
  check_rules(config, derived, source.words_before(derived.total_steps))
  # Validation: half causal rows and the final mask rate, so both losses are measured alike;
  # shuffled whatever data.order, so the loss is of the same mix of text at every step.
  dev = BatchSource(prepared.dev, config, derived, process_index=pid, process_count=nproc,
                    causal_fraction=0.5, mask_rate=config.objective.mask_rate_end, seed_offset=1,
                    order="shuffled")
  # The multilingual track: one more validation loss per language, on its held-out documents.
  dev_languages = {code: BatchSource(store, config, derived, process_index=pid,
                                     process_count=nproc, causal_fraction=0.5,
                                     mask_rate=config.objective.mask_rate_end, seed_offset=1,
                                     order="shuffled")
                   for code, store in prepared.dev_languages.items()}
  tokenizer_sha = ckpt_lib.tokenizer_sha256(prepared.tokenizer)

  mesh = sharding.make_mesh(config)
  # Distillation's teachers: loaded and checked (tokenizer, positions, budget) before the state.
  teachers = distill.load_teachers(config, prepared, tokenizer_sha, mesh)
  graphdef, state, shardings = step_lib.create_train_state(config, derived, mesh)
  if config.checkpoint.restart:
    _restart(workdir)
  ckpt = closing.enter_context(contextlib.closing(ckpt_lib.Checkpointer(workdir, config)))
  restored = ckpt.restore_latest(jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings),
      tokenizer_sha, prepared.data_key)
  start = 0
  if restored is not None:
    state, meta = restored
    start = int(meta["step"])
    distill.check_resume(meta, teachers, str(workdir / "checkpoints" / str(start)))
  t, total = config.train, derived.total_steps
  end = min(total, t.stop_after) if t.stop_after else total
  if start >= end:
    _say(_complete_line(start, total, workdir))
    return dict(train={}, val={}, step=start, complete=True)
  if restored is not None:
    logging.info("resumed from step %d (%s words seen)", start, f"{meta['words_seen']:,}")
  _write_run_files(workdir, config, derived, prepared)
  run_versions = versions_lib.record(workdir, "train")
  train_step = step_lib.make_train_step(config, derived, graphdef, mesh, shardings, teachers)
  eval_step = step_lib.make_eval_step(config, graphdef, mesh, shardings)

  writer = MetricsWriter(workdir, derived.total_steps, resume_step=start,
                         unit=config_lib.word_unit(config))
  curves = curves_lib.LearningCurves.create(config, graphdef, prepared.tokenizer, writer,
                                            workdir)
  peak = flops.peak_flops(config.model.compute_dtype)[0] * jax.device_count()

  def dev_losses(batches) -> dict:
    sums: dict[str, float] = {}
    for i in range(t.eval_batches):
      m = jax.device_get(eval_step(state.params, sharding.global_batch(batches.batch(i), mesh),
                                   state.teacher))
      for k in ("masked_loss", "causal_loss", "loss", "masked_targets", "causal_targets"):
        sums[k] = sums.get(k, 0.0) + float(m[k]) / t.eval_batches
    for kind in ("masked", "causal"):  # an objective without rows of this kind: no value
      if sums[f"{kind}_targets"] == 0:
        sums[f"{kind}_loss"] = None
    return sums

  def validate(step: int) -> dict:
    sums = dev_losses(dev)
    rec = dict(step=step, words_seen=source.words_before(step), val_loss=sums["loss"],
               val_masked_loss=sums["masked_loss"], val_causal_loss=sums["causal_loss"])
    for code, batches in dev_languages.items():  # val_loss_<language>, ...
      lang = dev_losses(batches)
      rec.update({f"val_loss_{code}": lang["loss"], f"val_masked_loss_{code}":
                  lang["masked_loss"], f"val_causal_loss_{code}": lang["causal_loss"]})
    writer.write(rec, kind="val")
    return rec

  def checked_meta(step: int, metrics_of_step) -> dict:
    """The checkpoint metadata of `step`, after making sure its loss is finite."""
    loss = float(jax.device_get(metrics_of_step["loss"]))
    if not math.isfinite(loss):
      raise UserError(f"the loss became non-finite ({loss}) at step {step}; no checkpoint was "
                      f"saved for it. Lower train.lr or check the data.")
    return ckpt_lib.make_meta(config, step, source.words_before(step), step_tokens(step),
                              tokenizer_sha, prepared.data_key, distill.records(teachers))

  step_tokens = derived.tokens_before

  last_train, last_val = {}, {}
  pending = None  # (step, metrics) of the step dispatched before the current one
  logged = dict(step=start, time=time.time())

  def look_at(step_done, metrics, force=False):
    nonlocal last_train
    rec = _check_and_log(step_done, metrics, writer=writer, source=source, derived=derived,
                         cfg=config, peak=peak, since=logged, step_tokens=step_tokens,
                         force=force)
    if rec is not None:
      last_train = rec
      logged.update(step=step_done, time=time.time())

  done = start
  it = source.iterator(start, end)
  with interrupts.deferred(), writer.console():
    try:
      if start == 0:
        last_val = validate(0)  # the baseline of the validation curve
        if curves is not None:
          curves.evaluate(state.ema_params, 0, words=0, tokens=0)
      for step, local in it:
        state, metrics = train_step(state, sharding.global_batch(local, mesh))
        done = step + 1
        if pending is not None:
          look_at(*pending)
        pending = (done, metrics)
        if curves is not None:  # before this step's checkpoint: a resume never skips a point
          curves.at_step(state.ema_params, done, words_before=source.words_before(step),
                         words=source.words_before(done), tokens=step_tokens(done),
                         last=done == total)
        stop = interrupts.requested()
        crossed = ckpt_lib.milestones_crossed(
            source.words_before(step), source.words_before(done)) if (
            config.checkpoint.milestones) else []
        rolling = done % config.checkpoint.every == 0 or done == end or stop
        if rolling or crossed:
          meta = checked_meta(done, metrics)
          if rolling:
            ckpt.save(state, meta)
          for m in crossed:
            ckpt.save(state, meta, milestone_words=m)
        if done % t.eval_every == 0 or done == end:
          last_val = validate(done)
        if stop:
          break
      if pending is not None:
        # A stopped run logs only the steps a straight run logs, so their records agree.
        look_at(*pending, force=not interrupts.requested())
    finally:
      ckpt.wait()
      writer.close()
      if hasattr(it, "close"):
        it.close()
  stop = interrupts.requested()
  if stop:
    _say(f"stopped by {'Ctrl-C' if stop == 'SIGINT' else stop}: saved the checkpoint of step "
         f"{done} of {total} in {workdir / 'checkpoints' / str(done)}; run the same command "
         f"again to resume.", sys.stderr)
  elif jax.process_index() == 0:
    plot_losses(workdir, writer.records, writer.unit)
    _say(_summary(workdir, ckpt, source, done, total, writer.records, time.time() - started,
                  run_versions, prepared.stats.get("corpus_manifest_sha256"),
                  distill.summary_lines(teachers), config_lib.word_unit(config)))
  return dict(train=last_train, val=last_val, step=done, preempted=stop == "SIGTERM",
              interrupted=stop)


def _say(text: str, stream=None):
  if jax.process_index() == 0:
    print(text, file=stream or sys.stdout, flush=True)


def _write_run_files(workdir, config, derived, prepared):
  """tokenizer.json and config.json, written once the run is known to go ahead."""
  from babylm_jax.data import tokenizer as tok_lib
  if jax.process_index() == 0:
    tok_lib.save_tokenizer_atomic(prepared.tokenizer, str(workdir / "tokenizer.json"))
  _write_config(workdir, config, derived, prepared.stats.get("corpus_manifest_sha256"))


def _complete_line(step: int, total: int, workdir) -> str:
  if step >= total:
    return (f"this run is complete (step {step} of {total}); nothing to do. Evaluate it with "
            f"python launch.py --mode=eval --workdir {workdir}")
  return (f"this run has reached train.stop_after (step {step} of {total}); raise or unset "
          f"--config.train.stop_after to continue it.")


def _summary(workdir, ckpt, source, step, total, records, seconds, run_versions,
             corpus_manifest: str | None = None, teacher_lines=(), unit: str = "words") -> str:
  """What the run did and where its outputs are, and the command to run next."""
  def loss(key):
    values = [r[key] for r in records if r.get(key) is not None]
    return f"{values[-1]:.4f}" if values else "-"
  state = "finished" if step >= total else "stopped at train.stop_after"
  steps = ckpt.steps()
  words = ckpt.milestone_words()
  return "\n".join([
      f"{state}: step {step} of {total}, {source.words_before(step):,} {unit} seen, "
      f"{seconds:,.0f} s",
      f"  final training loss {loss('loss')}, validation loss {loss('val_loss')}"
      + "".join(f", {k[len('val_loss_'):]} {loss(k)}" for k in sorted(
          {k for r in records for k in r if k.startswith("val_loss_")})),
      f"  checkpoints  {workdir / 'checkpoints'} (steps {', '.join(map(str, steps)) or 'none'})",
      f"  milestones   {workdir / 'milestones'} "
      f"({', '.join(f'{w:,} {unit}' for w in words) or 'none'})",
      f"  metrics      {workdir / 'metrics.jsonl'}",
      f"  TensorBoard  tensorboard --logdir {workdir / 'tb'}",
      f"  loss plot    {workdir / 'plots' / 'loss.png'}",
      f"  versions     {versions_lib.line(run_versions)} "
      f"({workdir / versions_lib.FILE_NAME})",
      *([f"  corpus       manifest sha256 {corpus_manifest} (data.path's corpus.json)"]
        if corpus_manifest else []),
      *teacher_lines,
      f"next: python launch.py --mode=eval --workdir {workdir}" if step >= total else
      "next: run the same command without --config.train.stop_after to continue",
  ])


def _check_and_log(step, metrics, *, writer, source, derived, cfg, peak, since, step_tokens,
                   force=False):
  """Stops on a non-finite loss; every log_every steps writes the record and returns it."""
  loss = float(jax.device_get(metrics["loss"]))
  if not math.isfinite(loss):
    raise UserError(f"the loss became non-finite ({loss}) at step {step}; the run stopped "
                    f"without saving it. Lower train.lr or check the data.")
  if (step % cfg.train.log_every and not force) or step <= since["step"]:
    return None
  from babylm_jax.train import flops
  host = {k: float(v) for k, v in jax.device_get(metrics).items()}
  for kind in ("masked", "causal"):  # no rows of this kind in the step: nothing measured
    if host.get(f"{kind}_targets", 1) == 0:
      host[f"{kind}_loss"] = host[f"{kind}_accuracy"] = None
  elapsed = max(time.time() - since["time"], 1e-9)
  tokens = step_tokens(step) - step_tokens(since["step"])
  tokens_per_s = tokens / elapsed
  seq_len = derived.phase_at(step - 1).seq_len
  achieved = tokens_per_s * flops.flops_per_token(cfg.model, seq_len)
  rec = dict(step=step, words_seen=source.words_before(step), tokens_seen=step_tokens(step),
             **{k: host[k] for k in sorted(host)}, tokens_per_s=tokens_per_s,
             mfu=achieved / peak if peak else 0.0,
             step_time_s=elapsed / (step - since["step"]), seq_len=seq_len)
  writer.write(rec)
  return rec
