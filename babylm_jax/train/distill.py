"""Distillation from finished runs (Baby Llama, Timiryasov & Tastet 2023): `objective.distill`.

The teachers are the EMA parameters of finished runs (`objective.distill.teachers`, a comma
list of workdirs), read by the params-only loader with each run's own config: a teacher may be
larger or shaped otherwise, but must share the student's tokenizer. They are frozen: passed to
the jitted step as an argument beside the state (never in the optimizer, never in a
checkpoint); a checkpoint's meta records their workdirs and a hash of their parameters, and a
resume refuses a teacher that changed.

At the student objective's targets, with T = temperature and a = alpha:
  loss = a x (the objective's cross-entropy) + (1 - a) x T^2 x KL(p_T || q_T) + the z-loss,
where q_T = softmax(student logits / T) and p_T the teachers' ensemble: the mean of their
softmax(logits / T) ('probs', Baby Llama) or the softmax of their mean logits / T ('logits').
The KL is averaged over targets like the cross-entropy (masked and causal rows weighted by
objective.masked_weight). Validation reports the plain objective, comparable across runs.

Positions line up only where the teacher was trained to read them as the student does: a
causal student's rows (next tokens) by a causal or hybrid teacher; a hybrid student's rows
(causal and masked-next-token) by a hybrid teacher; a masked student's rows (each hole at its
own position) by a masked teacher. The rest is refused, as is a bootstrap student or teacher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax import checkpoint_params
from babylm_jax import config as config_lib
from babylm_jax.errors import ConfigError, UserError
from babylm_jax.train import loss as loss_lib
from babylm_jax.train.objectives.targets import take_states, token_sums

# Student objective -> the teacher objectives whose predictions sit at the same positions.
COMPATIBLE = {"causal": ("causal", "hybrid"), "hybrid": ("hybrid",), "masked": ("masked",)}
KL_KEYS = ("masked_kl", "causal_kl")


@dataclasses.dataclass
class Teacher:
  workdir: str
  config: object
  graphdef: object
  params: dict
  sha256: str  # of the parameters' bytes
  budget: str  # what the run's word count takes from this teacher, in words
  added_words: int


def teacher_dirs(config) -> list[str]:
  return [w.strip() for w in config.objective.distill.teachers.split(",") if w.strip()]


# -- the loss ------------------------------------------------------------------------------

def kl_per_target(student_CV, teachers_KCV, temperature: float, ensemble: str):
  """KL(p_T || q_T) at each target, in float32: p_T the K teachers' ensemble at temperature T,
  q_T the student's softmax at T."""
  log_q_CV = jax.nn.log_softmax(student_CV.astype(jnp.float32) / temperature, axis=-1)
  scaled_KCV = teachers_KCV.astype(jnp.float32) / temperature
  if ensemble == "probs":
    # log of the mean probability, stably: logsumexp over teachers of log p_k - log K.
    log_p_CV = (jax.nn.logsumexp(jax.nn.log_softmax(scaled_KCV, axis=-1), axis=0)
                - jnp.log(float(scaled_KCV.shape[0])))
  else:
    log_p_CV = jax.nn.log_softmax(jnp.mean(scaled_KCV, axis=0), axis=-1)
  return jnp.sum(jnp.exp(log_p_CV) * (log_p_CV - log_q_CV), axis=-1)


def _kl_mean(sums, totals, masked_weight):
  """The KL averaged over targets as the cross-entropy is (masked and causal rows weighted)."""
  zero = jnp.zeros((), jnp.float32)
  as_ce = dict(masked_ce=sums["masked_kl"], causal_ce=sums["causal_kl"], masked_z=zero,
               causal_z=zero)
  return loss_lib.objective(as_ce, totals, masked_weight, 0.0)


def make_objective(base, teachers: list[Teacher]):
  """The student objective `base` (causal, hybrid or masked) with the teachers' KL added. Its
  `sums` takes the teachers' parameters (a tuple, one dict each) as its `teacher`."""
  graphdefs = [t.graphdef for t in teachers]

  def sums(model, batch, config, teacher, *, deterministic, rngs, divisor):
    d = config.objective.distill
    ids_BT, seg_BT, causal_B = batch["input_ids"], batch["segment_ids"], batch["is_causal"]
    states_BTD = model.states(ids_BT, seg_BT, causal_B, deterministic=deterministic, rngs=rngs)
    # The teachers read the student's very input, row kinds included, without dropout.
    taught = []
    for graphdef, params in zip(graphdefs, teacher):
      t_model = nnx.merge(graphdef, jax.lax.stop_gradient(params))
      t_BTD = t_model.states(ids_BT, seg_BT, causal_B, deterministic=True)
      taught.append((t_model, t_BTD.reshape(-1, t_BTD.shape[-1])))

    def extra(idx_C, weight_C, causal_C, logits_CV):
      t_KCV = jnp.stack([t_model.head(take_states(t_ND, idx_C)).astype(jnp.float32)
                         for t_model, t_ND in taught])
      kl_C = kl_per_target(logits_CV, jax.lax.stop_gradient(t_KCV), d.temperature, d.ensemble)
      w_C = weight_C.astype(jnp.float32)
      causal_w_C = w_C * causal_C.astype(jnp.float32)
      return dict(masked_kl=jnp.sum(kl_C * (w_C - causal_w_C)),
                  causal_kl=jnp.sum(kl_C * causal_w_C))

    return token_sums(model, states_BTD, batch, config, deterministic=deterministic, rngs=rngs,
                      divisor=divisor, extra=extra)

  def loss(sums, totals, config):
    o, d = config.objective, config.objective.distill
    ce = loss_lib.objective(sums, totals, o.masked_weight, 0.0)
    z = loss_lib.z_term(sums, totals, o.masked_weight, o.z_loss_pooling)
    return (d.alpha * ce + (1.0 - d.alpha) * d.temperature ** 2
            * _kl_mean(sums, totals, o.masked_weight) + o.z_loss * z)

  def metrics(sums, config) -> dict:
    out = base.metrics(sums, config)
    out["distill_kl"] = _kl_mean(sums, sums, config.objective.masked_weight)
    out["loss"] = loss(sums, sums, config)
    return out

  return types.SimpleNamespace(
      rows=base.rows, BACKENDS=base.BACKENDS, SUM_KEYS=base.SUM_KEYS + KL_KEYS, sums=sums,
      counts=base.counts, loss=loss, metrics=metrics, init_teacher=base.init_teacher,
      update_teacher=base.update_teacher)


# -- loading and checking the teachers -------------------------------------------------------

def params_sha256(params) -> str:
  """A hash of the parameters' values, paths and dtypes (the same on every process)."""
  h = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(params)[0],
                           key=lambda x: jax.tree_util.keystr(x[0])):
    arr = np.asarray(jax.device_get(leaf))
    h.update(f"{jax.tree_util.keystr(path)}:{arr.dtype}:{arr.shape};".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


def _budget(config, workdir, meta, run_config: dict, prepared) -> tuple[str, int]:
  """(what is counted, words added) for one teacher: its corpus once if it is this run's."""
  if meta.get("data_key") and meta.get("data_key") == prepared.data_key:
    return "same training text as this run (data_key): its words counted once", 0
  derived = run_config.get("derived", {})
  manifest = prepared.stats.get("corpus_manifest_sha256")
  if manifest and derived.get("corpus_manifest_sha256") == manifest:
    return "same corpus build as this run (manifest sha256): its words counted once", 0
  words = int(derived.get("corpus_words") or 0)
  return f"other data: its {words:,} training words added", words


def load_teachers(config, prepared, tokenizer_sha: str, mesh) -> list[Teacher]:
  """Loads and checks `objective.distill.teachers`; one-sentence UserError for each refusal."""
  import json
  from babylm_jax.data import generated
  dirs = teacher_dirs(config)
  if not dirs:
    return []
  kind = config.objective.kind
  if kind not in COMPATIBLE:
    raise ConfigError(f"objective.distill.teachers needs a causal, hybrid or masked student; "
                      f"objective.kind '{kind}' is not supported.")
  teachers = []
  for wd in dirs:
    path = checkpoint_params.absolute(wd)
    if not (path / "config.json").exists():
      raise UserError(f"teacher '{wd}' is not a finished run (no config.json there); check "
                      f"objective.distill.teachers.")
    t_config = config_lib.from_run(path)
    tok = path / "tokenizer.json"
    if not tok.exists() or checkpoint_params.tokenizer_file_sha256(tok) != tokenizer_sha:
      raise UserError(f"teacher '{wd}' was trained with a different tokenizer than this run; "
                      f"distil only from runs with the same tokenizer (set tokenizer.path to "
                      f"the teacher's tokenizer.json).")
    t_kind = t_config.objective.kind
    if t_kind not in COMPATIBLE[kind]:
      raise UserError(f"teacher '{wd}' was trained with objective.kind '{t_kind}', whose "
                      f"predictions do not sit at a {kind} student's targets; a {kind} "
                      f"student takes {' or '.join(COMPATIBLE[kind])} teachers.")
    if t_config.model.vocab_size != config.model.vocab_size:
      raise UserError(f"teacher '{wd}' has model.vocab_size={t_config.model.vocab_size} but "
                      f"this run {config.model.vocab_size}; their distributions must be over the "
                      f"same tokens.")
    graphdef, params, info = checkpoint_params.load_params(t_config, path, mesh=mesh)
    what, added = _budget(config, path, info,
                          json.loads((path / "config.json").read_text()), prepared)
    teachers.append(Teacher(str(path), t_config, graphdef, params, params_sha256(params),
                            what, added))
  added = sum(t.added_words for t in teachers)
  if added:
    budget, _ = config_lib.track_limits(config)
    own = generated.counted_words(config, list(prepared.stats["budget_words"].items()))
    if own + added > budget and not config.outside_rules:
      raise UserError(f"the teachers trained on other data: with their {added:,} words this run "
                      f"counts {own + added:,} words, over the {config.track} budget of "
                      f"{budget:,}; use teachers trained on this run's data or set "
                      f"--config.outside_rules=True.")
  return teachers


def records(teachers: list[Teacher]) -> list[dict]:
  """What a checkpoint's meta keeps of the teachers (never their parameters)."""
  return [dict(workdir=t.workdir, sha256=t.sha256) for t in teachers]


def check_resume(meta: dict, teachers: list[Teacher], where: str):
  """Refuses to resume with other teachers, or teachers whose parameters changed since."""
  saved, now = meta.get("distill_teachers") or [], records(teachers)
  if saved != now:
    def show(recs):
      return ", ".join(f"{r['workdir']} ({r['sha256'][:12]})" for r in recs) or "none"
    raise UserError(f"the checkpoint in {where} was distilled from other teachers ({show(saved)}) "
                    f"than this config gives ({show(now)}, parameter sha256 in brackets); use the "
                    f"same teacher runs, unchanged, or a fresh --workdir.")


def summary_lines(teachers: list[Teacher]) -> list[str]:
  return [f"  teacher      {t.workdir}: {t.budget}" for t in teachers]
