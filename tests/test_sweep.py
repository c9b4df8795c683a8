"""The sweep runner end to end: launch.py --mode=sweep on two tiny variants of the smoke config.

A sweep killed with SIGKILL while its second variant trains, then run again, gives the same
summary as one that never stopped; finished variants are never trained again; SIGTERM stops
the sweep once the running variant has saved, and sweep.only trains one variant; a bad
variant is refused before anything trains.
"""

import hashlib
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from babylm_jax.errors import ConfigError
from babylm_jax.sweep import spec, summary
from conftest import ROOT, data_path
from launch_helpers import env as _env

pytestmark = pytest.mark.slow

STEPS = 20


def _sweep_file(tmp, cache, variants=None) -> str:
  path = tmp / "tiny_sweep.py"
  overrides = {
      "data.path": str(data_path("babylm_text", "train_100k")), "data.cache_dir": str(cache),
      "train.steps": STEPS, "train.log_every": 5, "checkpoint.every": 10,
      "train.eval_every": 10, "train.eval_batches": 2,
      "train.eval_suites": "blimp_fast,ewok", "train.eval_suites_every_words": 10_000,
      "train.eval_suites_max_items": 70,
      "eval.suites": "blimp_fast,ewok", "eval.backend": "causal", "eval.max_items": 140,
      "eval.data.blimp_fast": str(data_path("babylm_eval/fast_eval/blimp_fast")),
      "eval.data.ewok": str(data_path("babylm_eval/fast_eval/ewok_fast"))}
  variants = variants or [("a", {}), ("b", {"model.layer_weighting": "residual", "seed": 1})]
  path.write_text(
      "from babylm_jax.sweep.spec import sweep_config\n\n"
      "def get_config():\n"
      f"  return sweep_config(base={str(ROOT / 'configs' / 'smoke.py')!r}, budget=1.0,\n"
      f"                      overrides={overrides!r},\n"
      f"                      variants={variants!r})\n")
  return str(path)


def _args(config, workdir, *extra):
  return [sys.executable, "launch.py", "--mode=sweep", "--config", config,
          "--workdir", str(workdir), *extra]


def sweep(config, workdir, *extra):
  r = subprocess.run(_args(config, workdir, *extra), cwd=ROOT, capture_output=True, text=True,
                     timeout=3600, env=_env())
  assert r.returncode == 0, r.stderr[-3000:]
  return r


def rows(workdir) -> list[dict]:
  """The summary's rows without the measured times."""
  data = json.loads((workdir / "summary.json").read_text())
  return [{k: v for k, v in r.items() if k not in summary.TIMING} for r in data["variants"]]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("sweep_cache")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, cache):
  tmp = tmp_path_factory.mktemp("straight_sweep")
  config = _sweep_file(tmp, cache)
  sweep(config, tmp / "runs")
  return config, tmp / "runs"


def test_sweep_trains_evaluates_and_summarises(straight):
  _, runs = straight
  got = rows(runs)
  assert [r["name"] for r in got] == ["a", "b"]
  for r in got:
    assert r["status"] == "finished" and r["steps"] == r["total_steps"] == STEPS
    assert r["words_seen"] > 15_000 and 5.0 < r["val_loss"] < 7.5
    assert set(r["accuracy"]) == {"blimp_fast/causal", "ewok/causal"}
    # The learning curves: start, every 10k words, end.
    assert [w for w, _ in r["curve"]["blimp_fast/causal"]][0] == 0
    assert len(r["curve"]["ewok/causal"]) == 2 + r["words_seen"] // 10_000
    # Each row agrees with its run's own files.
    report = json.loads((runs / r["name"] / "eval" / "blimp_fast-causal.json").read_text())
    assert r["accuracy"]["blimp_fast/causal"] == report["macro_accuracy"]
    assert report["step"] == STEPS and report["items"] == 67 * 2
  a, b = got
  assert b["overrides"] == {"model.layer_weighting": "residual", "seed": 1} and b["seed"] == 1
  assert a["parameters"] == 165_652 and b["parameters"] < a["parameters"]  # no layer weights
  assert b["vs_first"]["val_loss"] == pytest.approx(b["val_loss"] - a["val_loss"])
  assert b["vs_first"]["ewok/causal"] == pytest.approx(
      b["accuracy"]["ewok/causal"] - a["accuracy"]["ewok/causal"])
  # The hybrid smoke objective validates both kinds of rows; each part is in the table.
  assert 5.0 < b["val_causal_loss"] < 8.0 and 5.0 < b["val_masked_loss"] < 8.0
  assert b["vs_first"]["val_causal_loss"] == pytest.approx(
      b["val_causal_loss"] - a["val_causal_loss"])
  assert a["vs_first"] == {"blimp_fast/causal": 0.0, "ewok/causal": 0.0, "val_loss": 0.0,
                           "val_masked_loss": 0.0, "val_causal_loss": 0.0}
  full = json.loads((runs / "summary.json").read_text())["variants"]
  assert all(r["wall_s"] > 0 and r["tokens_per_s"] > 0 for r in full)
  md = (runs / "summary.md").read_text()
  assert f"| a | (base) | finished | 165,652 | {STEPS} |" in md
  assert "model.layer_weighting=residual, seed=1" in md
  assert (runs / "summary.png").stat().st_size > 5_000


def test_rerun_trains_nothing(straight):
  config, runs = straight
  before = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()
            and "summary" not in p.name}
  r = sweep(config, runs)
  assert r.stderr.count("is trained; not training it again") == 2
  assert "launch.py --mode=" not in r.stderr  # no child was started
  after = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()
           and "summary" not in p.name}
  assert after == before


def _state(pid) -> str:
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0]
  except FileNotFoundError:
    return "gone"


def _max_step(metrics) -> int:
  if not metrics.exists():
    return 0
  return max([0] + [json.loads(l)["step"] for l in metrics.read_text().splitlines()
                    if l.strip()])


def test_sigkill_in_second_variant_resumes_to_same_summary(straight, tmp_path):
  config, runs_straight = straight
  runs = tmp_path / "runs"
  log = tmp_path / "sweep.log"
  with open(log, "w") as out:
    proc = subprocess.Popen(_args(config, runs), cwd=ROOT, env=_env(), stdout=out,
                            stderr=subprocess.STDOUT)
  deadline = time.time() + 1800
  # Kill once variant b has a checkpoint and has trained past it.
  while time.time() < deadline:
    if (runs / "b" / "checkpoints" / "10").exists() and _max_step(
        runs / "b" / "metrics.jsonl") >= 15:
      break
    assert proc.poll() is None, log.read_text()[-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  child = int(re.search(r"variant 'b': train \(pid (\d+)\)", log.read_text()).group(1))
  deadline = time.time() + 30
  while _state(child) not in ("gone", "Z", "X") and time.time() < deadline:
    time.sleep(0.05)
  assert _state(child) in ("gone", "Z", "X"), "the run of variant b outlived its sweep"
  assert not (runs / "b" / "checkpoints" / str(STEPS)).exists()
  a_files = {p: p.stat().st_mtime_ns for p in (runs / "a").rglob("*") if p.is_file()}

  r = sweep(config, runs)
  assert "variant 'a' (1/2) is trained; not training it again" in r.stderr
  assert "resumed from step" in r.stdout + r.stderr
  assert {p: p.stat().st_mtime_ns for p in (runs / "a").rglob("*") if p.is_file()} == a_files
  assert rows(runs) == rows(runs_straight)


def test_sigterm_stops_the_sweep_and_only_resumes_one_variant(straight, tmp_path):
  config, runs_straight = straight
  runs = tmp_path / "runs"
  proc = subprocess.Popen(_args(config, runs), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 1800
  while time.time() < deadline and not (runs / "a" / "checkpoints" / "10").exists():
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=1800)
  assert proc.returncode == 0, err[-3000:]
  assert "SIGTERM received" in err and not (runs / "b").exists()
  saved = sorted(int(p.name) for p in (runs / "a" / "checkpoints").iterdir())
  assert 10 <= saved[-1] < STEPS  # the run saved where it stopped, before its end
  assert [r["status"] for r in rows(runs)] == ["partial", "pending"]

  # sweep.only=a finishes that variant alone; b stays pending.
  r = sweep(config, runs, "--config.sweep.only=a")
  assert "resumed from step" in r.stdout + r.stderr and not (runs / "b").exists()
  a, b = rows(runs)
  assert b["status"] == "pending" and b["steps"] == 0 and b["accuracy"] == {}
  assert a == rows(runs_straight)[0]  # the same run as in the full sweep


def test_bad_variants_are_refused_before_training(tmp_path, cache):
  bad = _sweep_file(tmp_path, cache, [("a", {}), ("b", {"model.layer_wieghting": "elc"})])
  r = subprocess.run(_args(bad, tmp_path / "runs"), cwd=ROOT, capture_output=True, text=True,
                     env=_env())
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert "sweep variant 'b'" in r.stderr and "model.layer_weighting" in r.stderr
  assert not (tmp_path / "runs" / "a").exists()
  ok = spec.resolve(_load(_sweep_file(tmp_path, cache)))
  smoke = str(ROOT / "configs" / "smoke.py")
  assert ok[1].command("W")[:5] == ["--mode=train", "--config", smoke, "--workdir", "W"]
  assert "--config.model.layer_weighting=residual" in ok[1].command("W")
  for variants, match in [
      ([("a", {"train.steps": 2.5})], "train.steps=2.5"),
      ([("a", {}), ("a", {"seed": 1})], "repeat"),
      ([("a/b", {})], "names a folder"),
      ([("a", {"model.hidden_size": 65})], "multiple of model.num_heads")]:
    with pytest.raises(ConfigError, match=match):
      spec.resolve(_load(_sweep_file(tmp_path, cache, variants)))


def _load(path):
  from babylm_jax import config_files
  return config_files.load(path)


def test_seed_questions_resolve_on_the_smoke_config():
  c = _load(str(ROOT / "configs" / "sweeps" / "seed_questions.py"))
  c.sweep.base = str(ROOT / "configs" / "smoke.py")  # configs/cpu_proxy.py in real use
  variants = {v.name: v.config for v in spec.resolve(c)}
  assert list(variants)[:2] == ["gpt_bert", "gpt_bert_seed1"]
  for config in variants.values():
    assert config.train.steps == 75  # a quarter of the smoke config's 300
    assert config.train.eval_suites == config.eval.suites == "blimp_fast,supplement,ewok"
  ref = variants["gpt_bert"]
  assert (ref.objective.causal_fraction, ref.model.layer_weighting) == (1 / 16, "gpt_bert")
  assert variants["gpt_bert_seed1"].seed == 1 and ref.seed == 0
  assert ref.objective.kind == "hybrid" and ref.eval.backend == "causal,mntp"
  assert (variants["causal_only"].objective.kind, variants["causal_only"].eval.backend) == (
      "causal", "causal")
  assert variants["masked_only"].objective.kind == "masked"
  assert variants["masked_only"].train.eval_suites_backend == "pll"
  assert variants["residual"].model.layer_weighting == "residual"
  assert (variants["standard_attention"].model.attention,
          variants["standard_attention"].model.position) == ("standard", "rotary")
  assert variants["no_normformer"].model.normformer is False
  boot = variants["bootstrap"]
  assert (boot.objective.kind, boot.model.decoder_layers, boot.eval.backend) == (
      "bootstrap", 2, "pll")
  # The seed's systems as their reference code builds them (issue 20), at the sweep's size.
  assert (boot.model.attention, boot.model.final_norm, boot.model.depth_scaling,
          boot.model.layer_weighting) == ("ltg", True, "boot_bert", "residual")
  ltg = variants["ltg_bert"]
  assert (ltg.objective.kind, ltg.model.attention, ltg.model.layer_weighting,
          ltg.objective.mask_rate_start, ltg.objective.z_loss, ltg.eval.backend) == (
      "masked", "ltg", "residual", 0.15, 0.0, "pll")
  assert variants["elc"].model.layer_weighting == "elc"
  # Every variant trains with the proxy's optimizer: only the network or objective differs.
  assert {(v.train.optimizer, v.train.lr) for v in variants.values()} == {
      (ref.train.optimizer, ref.train.lr)}


def test_learning_rate_sweep_is_the_reference_with_another_optimizer():
  """configs/sweeps/learning_rate.py: its first variant is seed_questions' gpt_bert exactly
  (so a finished one can be reused), the others differ from it in the optimizer and lr only."""
  from babylm_jax.sweep.run import _flat
  ref = _load(str(ROOT / "configs" / "sweeps" / "seed_questions.py"))
  lr = _load(str(ROOT / "configs" / "sweeps" / "learning_rate.py"))
  gpt_bert = _flat(spec.resolve(ref)[0].config.to_dict())
  variants = spec.resolve(lr)
  assert _flat(variants[0].config.to_dict()) == gpt_bert
  got = {}
  for v in variants[1:]:
    flat = _flat(v.config.to_dict())
    changed = {k for k in flat if flat[k] != gpt_bert[k]}
    assert changed <= {"train.optimizer", "train.lr", "eval.backend"}, (v.name, changed)
    assert v.config.eval.backend == "causal"
    got[v.name] = (v.config.train.optimizer, v.config.train.lr)
  assert got == {"adamw_1e-3": ("adamw", 1e-3), "adamw_4e-3": ("adamw", 4e-3),
                 "adamw_7e-3": ("adamw", 7e-3), "lamb_7e-3": ("gpt_bert_lamb", 7e-3),
                 "lamb_1.41e-2": ("gpt_bert_lamb", 1.41e-2)}


def test_a_changed_save_cadence_is_not_a_changed_variant(tmp_path):
  """A variant's folder is reused or resumed when only checkpoint.every / keep changed (they
  do not change what is trained); any other setting refuses it."""
  import copy
  from babylm_jax.errors import UserError
  from babylm_jax.sweep.run import _check_unchanged
  c = _load(str(ROOT / "configs" / "sweeps" / "seed_questions.py"))
  c.sweep.base = str(ROOT / "configs" / "smoke.py")
  v = spec.resolve(c)[0]
  saved = v.config.to_dict()
  saved["checkpoint"]["every"] += 7
  saved["checkpoint"]["keep"] += 1
  (tmp_path / "config.json").write_text(json.dumps(dict(saved, derived={}), default=str))
  _check_unchanged(v, str(tmp_path))
  other = copy.deepcopy(saved)
  other["train"]["lr"] *= 2
  (tmp_path / "config.json").write_text(json.dumps(dict(other, derived={}), default=str))
  with pytest.raises(UserError, match="train.lr"):
    _check_unchanged(v, str(tmp_path))
  # A run from before a field existed resumes while the sweep leaves the field at its default,
  # and is refused once the sweep sets it.
  older = copy.deepcopy(saved)
  del older["tokenizer"]["min_frequency"]
  (tmp_path / "config.json").write_text(json.dumps(dict(older, derived={}), default=str))
  _check_unchanged(v, str(tmp_path))
  v.config.tokenizer.min_frequency += 1
  with pytest.raises(UserError, match="tokenizer.min_frequency=None"):
    _check_unchanged(v, str(tmp_path))


def test_a_sweep_builds_its_corpora_and_one_tokenizer_that_every_variant_reads(tmp_path, cache):
  # The data sweep's machinery on the smoke config: two corpus recipes built once with
  # --mode=corpus, a tokenizer trained on one of them, each variant training on its corpus
  # with that tokenizer (so validation losses compare) and recording its manifest.
  path = tmp_path / "corpora_sweep.py"
  overrides = {
      "data.cache_dir": str(cache), "train.steps": 4, "train.log_every": 2,
      "checkpoint.every": 4, "train.eval_every": 4, "train.eval_batches": 1,
      "train.eval_suites": "", "eval.suites": "ewok", "eval.backend": "causal",
      "eval.max_items": 40, "eval.data.ewok": str(data_path("babylm_eval/fast_eval/ewok_fast")),
      "data.dev_path": str(data_path("babylm_text/dev_bb25_small"))}
  recipe = {"data.corpus.total_words": 60_000}
  path.write_text(
      "from babylm_jax.sweep.spec import sweep_config\n\n"
      "def get_config():\n"
      f"  return sweep_config(base={str(ROOT / 'configs' / 'smoke.py')!r},\n"
      f"      corpora={{'mix': ('configs/corpora/babylm_default.py', {recipe!r}),\n"
      f"               'book': ('configs/corpora/textbook_encyclopedia.py', {recipe!r})}},\n"
      f"      tokenizer_from='mix', overrides={overrides!r},\n"
      f"      variants=[('a', {{'data.path': '{{sweep}}/corpora/mix'}}),\n"
      f"                ('b', {{'data.path': '{{sweep}}/corpora/book'}})])\n")
  runs = tmp_path / "runs"
  sweep(str(path), runs)
  tok = (runs / "tokenizer" / "tokenizer.json").read_bytes()
  got = {r["name"]: r for r in json.loads((runs / "summary.json").read_text())["variants"]}
  for name, corpus_name in (("a", "mix"), ("b", "book")):
    manifest_file = runs / "corpora" / corpus_name / "corpus.json"
    manifest = json.loads(manifest_file.read_text())
    config = json.loads((runs / name / "config.json").read_text())
    assert config["data"]["path"] == str(runs / "corpora" / corpus_name)
    assert config["tokenizer"]["path"] == str(runs / "tokenizer" / "tokenizer.json")
    assert (runs / name / "tokenizer.json").read_bytes() == tok
    assert config["derived"]["corpus_manifest_sha256"] == hashlib.sha256(
        manifest_file.read_bytes()).hexdigest()
    assert got[name]["status"] == "finished"
    assert got[name]["corpus_words"] == {s["name"]: s["selected"]["words"]
                                         for s in manifest["sources"]}
  assert got["a"]["corpus_words"] != got["b"]["corpus_words"]
  # Run again: nothing is built or trained twice.
  stamp = (runs / "corpora" / "mix" / "corpus.json").stat().st_mtime_ns
  r = sweep(str(path), runs)
  assert (runs / "corpora" / "mix" / "corpus.json").stat().st_mtime_ns == stamp
  assert "--mode=corpus" not in r.stderr and "--mode=prepare" not in r.stderr


def _finished(workdir, steps=850):
  """The two things the sweep reads to call a run finished (summary.trained): the planned
  steps in its config.json and the checkpoint of the last one."""
  (workdir / "checkpoints" / str(steps)).mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps({"derived": {"total_steps": steps}}))


def test_augmentation_sweep_expands_to_its_variants_and_refuses_an_unfinished_teacher(tmp_path):
  """configs/sweeps/augmentation.py:DATA_SWEEP: its plain variants are the data sweep's `mix`
  runs exactly (so they can be copied in), each other variant changes only the teacher or the
  data, its prepare steps build the cut corpus and generate from `mix`; while a teacher is
  unfinished it refuses to load, in one line."""
  from babylm_jax.errors import UserError
  from babylm_jax.sweep.run import _flat
  data_sweep = tmp_path / "data_questions"
  _finished(data_sweep / "mix")
  (data_sweep / "mix_seed1" / "checkpoints" / "849").mkdir(parents=True)  # not the last step
  (data_sweep / "mix_seed1" / "config.json").write_text(
      json.dumps({"derived": {"total_steps": 850}}))
  config = f"{ROOT / 'configs' / 'sweeps' / 'augmentation.py'}:{data_sweep}"
  with pytest.raises(UserError, match=f"teacher '{data_sweep / 'mix_seed1'}' is not a "
                                      f"finished run") as e:
    _load(config)
  assert "\n" not in str(e.value)
  r = subprocess.run(_args(config, tmp_path / "runs"), cwd=ROOT, capture_output=True,
                     text=True, env=_env())
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert [l for l in r.stderr.splitlines() if l.startswith("error:")] == [
      f"error: {e.value}"]
  assert not (tmp_path / "runs").exists()

  (data_sweep / "mix_seed1" / "checkpoints" / "849").rmdir()
  _finished(data_sweep / "mix_seed1")
  runs = tmp_path / "runs"
  sweep = spec.in_workdir(_load(config), str(runs))
  variants = {v.name: v for v in spec.resolve(sweep)}
  assert list(variants) == ["proxy", "proxy_seed1", "distill_one", "distill_two", "generated"]
  data = spec.in_workdir(_load(str(ROOT / "configs" / "sweeps" / "data_questions.py")),
                         str(data_sweep))
  data = {v.name: _flat(v.config.to_dict()) for v in spec.resolve(data)}
  proxy = _flat(variants["proxy"].config.to_dict())
  assert proxy == data["mix"]  # the teacher itself: a copy of its folder is reused
  assert _flat(variants["proxy_seed1"].config.to_dict()) == data["mix_seed1"]
  assert proxy["data.path"] == str(data_sweep / "corpora" / "mix")
  assert proxy["tokenizer.path"] == str(data_sweep / "tokenizer" / "tokenizer.json")

  def changed(name):
    flat = _flat(variants[name].config.to_dict())
    return {k: flat[k] for k in flat if flat[k] != proxy[k]}
  baby_llama = {"objective.distill.alpha": 0.5, "objective.distill.temperature": 2.0}
  assert proxy["objective.distill.ensemble"] == "probs"
  assert changed("distill_one") == {"objective.distill.teachers": str(data_sweep / "mix"),
                                    **{k: v for k, v in baby_llama.items() if proxy[k] != v}}
  assert variants["distill_one"].config.objective.distill.alpha == 0.5
  assert variants["distill_two"].config.objective.distill.temperature == 2.0
  assert changed("distill_two")["objective.distill.teachers"] == (
      f"{data_sweep / 'mix'},{data_sweep / 'mix_seed1'}")
  assert changed("generated") == {"data.path": f"{runs}/augmented/*/*.train"}
  assert variants["proxy"].config.objective.kind == "causal"  # the CPU proxy recipe

  real, generate = sweep.sweep.prepare
  assert real["creates"] == f"{runs}/augmented/real/corpus.json"
  args = list(real["args"])
  corpus = spec.parse_flags(args[2], [a for a in args if a.startswith("--config.")], "real")
  assert corpus.data.corpus.total_words == 1_100_000 - 110_000  # + ~110k generated
  assert args[args.index("--workdir") + 1] == f"{runs}/augmented/real"
  assert generate["creates"] == f"{runs}/augmented/generated"
  assert generate["args"][:3] == ("--mode=generate", "--workdir", str(data_sweep / "mix"))
  assert f"--config.generate.out={runs}/augmented/generated" in generate["args"]


def test_prepare_steps_run_once_in_order_before_the_variants(tmp_path):
  """A sweep's prepare step is an ordinary launch.py command run as a child once; a step whose
  path is there is skipped; a step that does not create its path stops the sweep."""
  import signal as signal_lib
  from babylm_jax.errors import UserError
  from babylm_jax.sweep import run
  corpus = ["--mode=corpus", "--config", "configs/corpora/babylm_default.py",
            "--config.data.corpus.total_words=20000", "--config.data.corpus.cut_last=True",
            "--workdir"]
  made = tmp_path / "runs" / "extra"
  c = spec.sweep_config(base="configs/smoke.py", variants=[("a", {})], prepare=[
      ("extra", "{sweep}/extra/corpus.json", corpus + ["{sweep}/extra"])])
  c = spec.in_workdir(c, str(tmp_path / "runs"))
  assert c.sweep.prepare[0]["args"][-1] == str(made)
  handler = signal_lib.getsignal(signal_lib.SIGTERM)
  try:
    run._prepare(c, run._Children([]))
    manifest = json.loads((made / "corpus.json").read_text())
    assert manifest["totals"]["words"] == 20_000
    stamp = (made / "corpus.json").stat().st_mtime_ns
    run._prepare(c, run._Children([]))  # there: not run again
    assert (made / "corpus.json").stat().st_mtime_ns == stamp
    wrong = spec.in_workdir(spec.sweep_config(
        base="configs/smoke.py", variants=[("a", {})],
        prepare=[("wrong", "{sweep}/elsewhere", corpus + ["{sweep}/other"])]),
        str(tmp_path / "runs"))
    with pytest.raises(UserError, match="prepare step 'wrong' finished without creating"):
      run._prepare(wrong, run._Children([]))
  finally:
    signal_lib.signal(signal_lib.SIGTERM, handler)
  with pytest.raises(ConfigError, match="prepare step .* is malformed"):
    spec.sweep_config(base="configs/smoke.py", variants=[("a", {})],
                      prepare=[("x", "{sweep}/x", ["--workdir", "W"])])
