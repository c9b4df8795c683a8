"""benchmarks/cpu_proxy.py runs prepare, train and eval and reports them in its last line."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, data_path

pytestmark = pytest.mark.slow


def test_cpu_proxy_benchmark_on_the_smoke_config(tmp_path):
  work = tmp_path / "proxy"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "benchmarks/cpu_proxy.py", "--workdir", str(work),
         "--config", "configs/smoke.py", "--suites", "blimp_fast,ewok",
         "--backends", "causal,fused",
         f"--config.data.path={data_path('babylm_text', 'train_100k')}",
         f"--config.data.cache_dir={tmp_path / 'cache'}", "--config.train.steps=12",
         "--config.checkpoint.every=12", "--config.train.log_every=4",
         "--config.train.eval_suites=blimp_fast", "--config.train.eval_suites_max_items=70",
         "--config.eval.max_items=70",
         f"--config.eval.data.blimp_fast={data_path('babylm_eval/fast_eval/blimp_fast')}",
         f"--config.eval.data.ewok={data_path('babylm_eval/fast_eval/ewok_fast')}"]
  r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  out = json.loads(r.stdout.strip().splitlines()[-1])
  records = [json.loads(l) for l in (work / "metrics.jsonl").read_text().splitlines()]
  last = [rec for rec in records if "loss" in rec][-1]
  assert out["steps"] == 12 and out["words_seen"] == last["words_seen"] > 0
  assert out["tokens_seen"] == 12 * 2048
  assert out["train_wall_s"] > 0 and out["train_fraction_of_60_min"] == pytest.approx(
      out["train_wall_s"] / 3600, abs=1e-3)
  # (train_wall_s is rounded to 0.1 s in the JSON line; tokens_per_s is not computed from it)
  assert out["tokens_per_s"] == pytest.approx(out["tokens_seen"] / out["train_wall_s"], rel=0.01)
  assert set(out["macro_accuracy"]) == {"blimp_fast/causal", "blimp_fast/fused",
                                        "ewok/causal", "ewok/fused"}
  report = json.loads((work / "eval" / "ewok-fused.json").read_text())
  assert out["macro_accuracy"]["ewok/fused"] == round(report["macro_accuracy"], 4)
  assert report["step"] == 12 and report["items"] == 66  # 70 // 11 domains x 11
  # Start and end points of the learning curve.
  assert [rec["step"] for rec in records if "zero_shot" in rec] == [0, 12]
  assert 0 < out["curves_s"] < out["train_wall_s"]
  # A second run into the same folder would time a resumption, not a run: refused.
  again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  assert again.returncode != 0 and "fresh --workdir" in again.stderr
