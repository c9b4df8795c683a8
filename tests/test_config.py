"""The config recipes and derived quantities."""

import subprocess
import sys

import numpy as np
import pytest

from babylm_jax import config as config_lib
from babylm_jax.errors import ConfigError
from conftest import ROOT, load_config


def test_strict_small_recipe():
  c = load_config("strict_small")
  d = config_lib.derive(c)
  assert (c.model.num_layers, c.model.hidden_size, c.model.intermediate_size,
          c.model.num_heads, c.model.vocab_size) == (12, 384, 1280, 6, 8192)
  assert d.tokens_per_step == 16_384
  assert 9_800 <= d.total_steps <= 10_000
  assert d.warmup_steps == d.cooldown_steps == round(0.016 * d.total_steps)
  lens = [(p.seq_len, p.end - p.start, p.batch_rows * p.seq_len) for p in d.phases]
  assert [l[0] for l in lens] == [128, 256, 512]
  assert all(l[2] == 16_384 for l in lens)  # constant tokens per step
  assert abs(lens[0][1] / d.total_steps - 0.6) < 1e-3
  assert abs(lens[1][1] / d.total_steps - 0.2) < 1e-3
  assert c.objective.mask_rate_start == 0.30 and c.objective.mask_rate_end == 0.15
  assert c.objective.causal_fraction == 1 / 16
  assert (c.train.optimizer, c.train.lr) == ("gpt_bert_lamb", 1.41e-2)


def test_strict_recipe():
  c = load_config("strict")
  d = config_lib.derive(c)
  assert (c.model.hidden_size, c.model.intermediate_size, c.model.num_heads,
          c.model.vocab_size) == (768, 2560, 12, 16_384)
  assert d.tokens_per_step == 131_072
  assert 12_200 <= d.total_steps <= 12_400
  assert (c.train.optimizer, c.train.lr) == ("gpt_bert_lamb", 1e-2)


def test_measured_corpus_and_steps_override():
  c = load_config("strict_small")
  d = config_lib.derive(c, corpus_tokens=1_638_400, corpus_words=1_000_000)
  assert d.total_steps == 1000  # 10 epochs x 1.6384M tokens / 16384
  assert d.planned_words == 10_000_000
  c.train.steps = 50
  d = config_lib.derive(c)
  assert d.total_steps == 50 and [p.end for p in d.phases] == [30, 40, 50]


def test_batch_ramp_rises_linearly_in_few_shapes_and_keeps_the_token_budget():
  """strict_small with the reference ramp (a quarter to full over the whole run, 4 levels) and
  phases 70/20/10: tokens per step 4096, 8192, 12288, 16384 from 0, 1/4, 1/2, 3/4 of the steps,
  six shapes in all; the fewest steps whose tokens reach ten epochs; tokens_before sums the
  steps' shapes."""
  c = load_config("strict_small")
  c.train.batch_ramp_start, c.train.seq_len_fractions = 0.25, (0.7, 0.2, 0.1)
  d = config_lib.derive(c, corpus_tokens=16_000_000, corpus_words=10_000_000)
  N = d.total_steps
  per_step = np.array([d.phase_at(s).tokens_per_step for s in range(N)])
  for i, tokens in enumerate((4096, 8192, 12288, 16384)):
    assert (per_step[round(i * N / 4):round((i + 1) * N / 4)] == tokens).all()
  assert len({(p.seq_len, p.batch_rows) for p in d.phases}) == len(d.phases) == 6
  assert [p.seq_len for p in d.phases] == [128, 128, 128, 256, 256, 512]
  assert d.phases[3].start == round(0.7 * N) and d.phases[5].start == round(0.9 * N)
  assert d.tokens_before(N - 1) < 160_000_000 <= d.tokens_before(N)
  for s in (0, 1, N // 4, N // 2 + 3, N - 1, N):
    assert d.tokens_before(s) == per_step[:s].sum()
  assert d.planned_words == round(d.tokens_before(N) * 10 / 16)
  assert N == pytest.approx(160_000_000 / (16384 * 5 / 8), rel=2e-3)  # the ramp's mean: 5/8


@pytest.mark.parametrize("field,value,fragment", [
    ("train.tokens_per_step", 1000, "train.tokens_per_step"),
    ("model.vocab_size", 10, "model.vocab_size"),
    ("model.num_heads", 5, "model.num_heads"),
    ("train.seq_len_fractions", (0.5, 0.2, 0.2), "train.seq_len_fractions"),
    ("train.micro_batches", 3, "train.micro_batches"),
    ("track", "huge", "track"),
    ("train.batch_ramp_start", -0.5, "train.batch_ramp_start"),
    ("train.batch_ramp_levels", 1, "train.batch_ramp_levels"),
    ("objective.masking", "spans", "objective.masking"),
    ("objective.anti_repeat", True, "objective.anti_repeat"),
    ("train.optimizer", "sgd", "train.optimizer"),
])
def test_bad_values_name_the_field(field, value, fragment):
  c = load_config("strict_small")
  sect, _, key = field.rpartition(".")
  (c[sect] if sect else c)[key] = value
  with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
    config_lib.derive(c)


def test_unknown_override_names_nearest_key():
  r = subprocess.run([sys.executable, "launch.py", "--config", "configs/smoke.py",
                      "--config.train.lrr=1", "--workdir", "/tmp/unused"],
                     cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2
  assert "--config.train.lr?" in r.stderr and "Traceback" not in r.stderr


def test_bad_override_value_is_one_sentence():
  r = subprocess.run([sys.executable, "launch.py", "--config", "configs/smoke.py",
                      "--config.train.lr=abc", "--workdir", "/tmp/unused"],
                     cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2
  assert "train.lr" in r.stderr and "Traceback" not in r.stderr
