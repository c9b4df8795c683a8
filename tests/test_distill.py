"""Distillation (`objective.distill`, train/distill.py): the loss against numpy, a run that
distils from a smoke teacher trained here on the shared text, its exact resume after SIGKILL
(launch.py as a real subprocess), and the refusals.

One teacher run (hybrid, a few steps) is trained per module and shared by every test.
"""

import json
import shutil
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from babylm_jax import config as config_lib
from babylm_jax.errors import UserError
from babylm_jax.model.gpt_bert import GPTBert
from babylm_jax.train import distill
from babylm_jax.train.objectives import hybrid
from conftest import data_path, load_config
from launch_helpers import final_params, kill_after, launch
from test_step import make_batch, tiny_config

STEPS = 4


# ----------------------------------------------------------------------------- the loss


def _np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_loss(student, teachers, targets, mask, causal, r, T, alpha, ensemble):
  """alpha x CE + (1 - alpha) x T^2 x KL(p_T || q_T), each the masked/causal weighted mean."""
  ce = -np.take_along_axis(_np_log_softmax(student), targets[:, None], -1)[:, 0]
  log_q = _np_log_softmax(student / T)
  if ensemble == "probs":
    p = np.mean([np.exp(_np_log_softmax(t / T)) for t in teachers], axis=0)
  else:
    p = np.exp(_np_log_softmax(np.mean(teachers, axis=0) / T))
  kl = (p * (np.log(p) - log_q)).sum(-1)

  def weighted(x):
    m, c = mask & ~causal, mask & causal
    parts = [(r, x[m].mean())] if m.any() else []
    parts += [(1 - r, x[c].mean())] if c.any() else []
    return sum(w * v for w, v in parts) / sum(w for w, _ in parts)
  return alpha * weighted(ce) + (1 - alpha) * T * T * weighted(kl)


def _net(config, seed):
  model = GPTBert(config.model, rngs=nnx.Rngs(params=jax.random.key(seed)))
  graphdef, state = nnx.split(model)
  return model, graphdef, nnx.to_pure_dict(state)


def _all_logits(model, batch):
  states = model.states(batch["input_ids"], batch["segment_ids"], batch["is_causal"],
                        deterministic=True)
  logits = np.asarray(model.head(states), np.float64)
  return logits.reshape(-1, logits.shape[-1])


@pytest.mark.parametrize("ensemble", ["probs", "logits"])
@pytest.mark.parametrize("n_teachers", [1, 2])
def test_loss_matches_numpy(n_teachers, ensemble):
  """Causal rows and masked-next-token rows in one batch; the teachers read the same input."""
  c = tiny_config()
  c.objective.z_loss = 0.0
  c.objective.masked_weight = 0.7
  c.objective.distill.ensemble = ensemble
  c.objective.distill.temperature, c.objective.distill.alpha = 2.0, 0.3
  batch = make_batch(0, causal_rows=3)
  student, _, s_params = _net(c, 0)
  teachers = []
  for k in range(n_teachers):
    model, graphdef, params = _net(c, 10 + k)
    teachers.append((model, distill.Teacher("t", c, graphdef, params, "", "", 0)))
  objective = distill.make_objective(hybrid, [t for _, t in teachers])
  sums = objective.sums(student, jax.tree.map(jax.numpy.asarray, batch), c, tuple(t.params for _, t in teachers),
                        deterministic=True, rngs=None, divisor=1)
  got = float(objective.metrics(sums, c)["loss"])
  mask = batch["loss_mask"].reshape(-1)
  causal = np.broadcast_to(batch["is_causal"][:, None], batch["loss_mask"].shape).reshape(-1)
  assert mask[causal].any() and mask[~causal].any()
  want = _np_loss(_all_logits(student, batch), [_all_logits(m, batch) for m, _ in teachers],
                  batch["targets"].reshape(-1), mask, causal, 0.7, 2.0, 0.3, ensemble)
  assert got == pytest.approx(want, rel=1e-5)


def test_kl_is_zero_for_a_teacher_equal_to_the_student_and_ensembles_differ():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(5, 7)).astype(np.float32)
  assert np.allclose(distill.kl_per_target(s, s[None], 2.0, "probs"), 0.0, atol=1e-6)
  two = np.stack([s * 3, -s])
  by_probs = distill.kl_per_target(s, two, 2.0, "probs")
  by_logits = distill.kl_per_target(s, two, 2.0, "logits")
  assert np.all(np.asarray(by_probs) > 0) and not np.allclose(by_probs, by_logits)


# ----------------------------------------------------------------------------- runs


def _config(kind="hybrid", steps=STEPS):
  c = load_config("smoke")
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.objective.kind = kind
  c.train.steps = steps
  c.train.seq_lens, c.train.seq_len_fractions = (64,), (1.0,)  # one shape: one compilation
  c.train.eval_every = 1000
  c.train.eval_batches = 1
  c.train.log_every = 2
  c.checkpoint.every = steps // 2
  c.checkpoint.milestones = False
  return c


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
  from babylm_jax.train.loop import train
  workdir = tmp_path_factory.mktemp("teacher") / "run"
  train(_config(), str(workdir))
  return workdir


def _student(teachers, kind="hybrid", steps=STEPS):
  c = _config(kind, steps)
  c.objective.distill.teachers = ",".join(map(str, teachers))
  return c


def test_distilled_run_records_its_teachers_and_resumes_only_with_them(teacher, tmp_path,
                                                                      capsys):
  """Stopped halfway, a run resumes with its teacher, never with another one."""
  from babylm_jax.checkpoint_params import saved_keys
  from babylm_jax.train import checkpoint
  from babylm_jax.train.loop import train
  wd = tmp_path / "student"
  c = _student([teacher])
  c.train.stop_after = STEPS // 2
  train(c, str(wd))
  other = tmp_path / "other_teacher"
  shutil.copytree(teacher, other)
  with pytest.raises(UserError, match="distilled from other teachers") as e:
    train(_student([other]), str(wd))
  assert "\n" not in str(e.value)
  capsys.readouterr()
  out = train(_student([teacher]), str(wd))
  assert out["step"] == STEPS and not out["interrupted"]
  assert np.isfinite(out["train"]["loss"]) and out["train"]["distill_kl"] > 0
  printed = capsys.readouterr().out
  assert f"teacher      {teacher}: same training text as this run" in printed
  ckpt = checkpoint.Checkpointer(wd, c, read_only=True)
  try:
    meta = ckpt.read_meta(saved_keys(wd, milestone=False)[-1])
  finally:
    ckpt.close()
  (rec,) = meta["distill_teachers"]
  assert rec["workdir"] == str(teacher) and len(rec["sha256"]) == 64
  import orbax.checkpoint as ocp
  tree = ocp.StandardCheckpointer().restore(wd / "checkpoints" / str(STEPS) / "state")
  assert "teacher" not in tree  # the frozen teachers are never saved again


def _launch_args(workdir, teacher, steps):
  """launch.py's command line for _student([teacher], steps=steps) with a save every 4 steps."""
  c = _student([teacher], steps=steps)
  return ["--mode=train", "--config", "configs/smoke.py", "--workdir", str(workdir),
          f"--config.data.path={c.data.path}", f"--config.objective.kind={c.objective.kind}",
          f"--config.train.steps={steps}", "--config.train.seq_lens=(64,)",
          "--config.train.seq_len_fractions=(1.0,)", "--config.train.eval_every=1000",
          "--config.train.eval_batches=1", "--config.train.log_every=2",
          "--config.checkpoint.every=4", "--config.checkpoint.milestones=False",
          f"--config.objective.distill.teachers={teacher}"]


def _logged(workdir) -> dict[int, dict]:
  """Each logged training step's metrics, less the measured times."""
  out = {}
  for line in (workdir / "metrics.jsonl").read_text().splitlines():
    rec = json.loads(line)
    if "loss" in rec:
      out[rec["step"]] = {k: v for k, v in rec.items()
                          if not k.endswith(("per_s", "time_s")) and k != "mfu"}
  return out


def test_distilled_run_resumes_exactly_after_sigkill(teacher, tmp_path):
  """launch.py distilling from the module's teacher, SIGKILLed after its step-4 save and run
  again, logs the same metrics (its KL included) and ends with the same parameters, bit for
  bit, as a run that never stopped: the teacher is read again, never restored."""
  steps = 12
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  r = launch(*_launch_args(straight, teacher, steps))
  assert r.returncode == 0, r.stderr[-3000:]
  kill_after(killed, [sys.executable, "launch.py", *_launch_args(killed, teacher, steps)],
             checkpoint=4, past=6)
  assert not (killed / "checkpoints" / str(steps)).exists()
  r = launch(*_launch_args(killed, teacher, steps))
  assert r.returncode == 0, r.stderr[-3000:]
  assert "resumed from step" in r.stderr
  logged = _logged(straight)
  assert sorted(logged) == list(range(2, steps + 1, 2)) and logged[steps]["distill_kl"] > 0
  assert _logged(killed) == logged
  for a, b in zip(final_params(killed, steps), final_params(straight, steps), strict=True):
    np.testing.assert_array_equal(a, b)


def _refusal(config, tmp_path, match):
  from babylm_jax.train.loop import train
  with pytest.raises(UserError, match=match) as e:
    train(config, str(tmp_path / "student"))
  assert "\n" not in str(e.value)


def test_missing_teacher_is_refused(teacher, tmp_path):
  _refusal(_student([teacher, tmp_path / "nowhere"]), tmp_path, "is not a finished run")


def test_teacher_with_another_tokenizer_is_refused(teacher, tmp_path):
  other = tmp_path / "other_tokenizer"
  shutil.copytree(teacher, other)
  tok = json.loads((other / "tokenizer.json").read_text())
  vocab = tok["model"]["vocab"]
  a, b = [k for k in vocab if vocab[k] > 100][:2]
  vocab[a], vocab[b] = vocab[b], vocab[a]  # two tokens' ids swapped: another tokenizer
  (other / "tokenizer.json").write_text(json.dumps(tok))
  _refusal(_student([other]), tmp_path, "different tokenizer")


def test_teacher_whose_positions_do_not_line_up_is_refused(teacher, tmp_path):
  _refusal(_student([teacher], kind="masked"), tmp_path, "do not sit at a masked student")


def test_teacher_on_other_data_over_the_budget_is_refused(teacher, tmp_path):
  """A teacher on other text adds its words; here they break the strict_small budget."""
  other = tmp_path / "big_teacher"
  shutil.copytree(teacher, other)
  cfg = json.loads((other / "config.json").read_text())
  cfg["derived"]["corpus_words"] = 10_000_000
  (other / "config.json").write_text(json.dumps(cfg))
  c = _student([other])
  c.data.dev_fraction = 0.01  # other training text (data_key), the teacher's tokenizer
  c.tokenizer.path = str(other / "tokenizer.json")
  _refusal(c, tmp_path, "teachers trained on other data")
  c.outside_rules = True
  from babylm_jax.data.prepare import prepare_data
  from babylm_jax.train import sharding
  from babylm_jax.checkpoint_params import tokenizer_sha256
  prepared = prepare_data(c)
  (t,) = distill.load_teachers(c, prepared, tokenizer_sha256(prepared.tokenizer),
                               sharding.make_mesh(c))
  assert t.added_words == 10_000_000 and "other data" in t.budget


@pytest.mark.parametrize("field,value,match", [
    ("ensemble", "mean", "ensemble 'mean' is unknown"),
    ("temperature", 0.0, "temperature must be positive"),
    ("alpha", 1.5, "alpha must lie in"),
    ("kind", "bootstrap", "needs a causal, hybrid or masked student")])
def test_bad_distill_settings_are_refused(field, value, match):
  c = _student(["somewhere"])
  if field == "kind":
    c.objective.kind, c.model.decoder_layers = value, 1
  else:
    c.objective.distill[field] = value
  with pytest.raises(config_lib.ConfigError, match=match) as e:
    config_lib.validate(c)
  assert "\n" not in str(e.value)
