"""Learning curves: zero-shot suites scored on the EMA parameters during training.

The records appear at the start, at each point of the word grid and at the last step, and each
equals a separate --mode=eval of the same checkpoint on the same fixed subset.
"""

import json

import pytest

from babylm_jax.eval import run, suites
from babylm_jax.train.checkpoint import MILESTONES
from babylm_jax.train.curves import grid_crossed
from conftest import data_path, load_config

STEPS, EVERY_WORDS, MAX_ITEMS = 24, 8_000, 150


def test_grid_is_the_babylm_milestones_or_every_n_words():
  assert grid_crossed(999_999, 1_000_000, 0) and not grid_crossed(1_000_000, 1_999_999, 0)
  crossed = [m for m in range(0, 120_000_000, 500_000) if grid_crossed(m, m + 500_000, 0)]
  assert crossed == [m - 500_000 for m in MILESTONES if m < 120_000_000]
  assert [w for w in range(0, 50_000, 1_000) if grid_crossed(w, w + 1_000, 8_000)] == [
      7_000, 15_000, 23_000, 31_000, 39_000, 47_000]


def test_subset_is_fixed_and_even_over_paradigms():
  folder = str(data_path("babylm_eval/fast_eval/blimp_fast"))
  full = suites.load_suite("blimp_fast", folder)
  part = suites.subset(full, 1_000)
  paradigms = {p: sum(it.paradigm == p for it in part.items) for p in full.paradigms}
  assert set(paradigms.values()) == {1_000 // 67}  # 67 paradigms, 14 items each
  assert set(part.items) <= set(full.items) and len(set(part.items)) == len(part.items)
  assert suites.subset(full, 1_000) == part  # the same draw every time
  # A paradigm's draw does not depend on the others: one file alone gives the same items.
  one = suites.Suite("blimp_fast", tuple(it for it in full.items
                                         if it.paradigm == full.paradigms[0]), ())
  assert set(suites.subset(one, 14).items) == {
      it for it in part.items if it.paradigm == full.paradigms[0]}
  assert suites.subset(full, None) is full and suites.subset(full, 0) is full
  assert len(suites.subset(full, 10).items) == 67  # at least one per paradigm


def _config():
  c = load_config("smoke")
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.train.steps = STEPS
  c.train.log_every = 1
  c.train.eval_every = 1_000
  c.checkpoint.every = STEPS
  c.train.eval_suites = "blimp_fast,ewok"
  c.train.eval_suites_every_words = EVERY_WORDS
  c.train.eval_suites_max_items = MAX_ITEMS
  c.eval.data.blimp_fast = str(data_path("babylm_eval/fast_eval/blimp_fast"))
  c.eval.data.ewok = str(data_path("babylm_eval/fast_eval/ewok_fast"))
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from babylm_jax.train.loop import train
  workdir = tmp_path_factory.mktemp("curves")
  train(_config(), str(workdir))
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return workdir, records


def test_records_at_start_grid_points_and_end(trained):
  workdir, records = trained
  words = {0: 0, **{r["step"]: r["words_seen"] for r in records if "loss" in r}}
  assert sorted(words) == list(range(STEPS + 1))  # logged at every step
  want = [0] + [s for s in range(1, STEPS)
                if words[s - 1] // EVERY_WORDS < words[s] // EVERY_WORDS]
  want.append(STEPS)
  assert len(want) >= 4, want  # the grid is crossed at least twice inside the run
  curve = [r for r in records if "zero_shot" in r]
  assert [r["step"] for r in curve] == want
  assert [r["words_seen"] for r in curve] == [words[s] for s in want]
  for r in curve:
    assert set(r["zero_shot"]) == {"blimp_fast/causal", "ewok/causal"}
    assert r["zero_shot_items"] == {"blimp_fast": 67 * 2, "ewok": 11 * 13}
    assert all(0.0 <= a <= 1.0 for a in r["zero_shot"].values()) and r["zero_shot_s"] > 0
  # The scores change as the model trains (it is not scoring the same weights each time).
  assert len({tuple(r["zero_shot"].values()) for r in curve}) > 1
  assert (workdir / "plots" / "zero_shot.png").stat().st_size > 1000
  tb = _tensorboard_scalars(workdir / "tb")
  for name in ("blimp_fast/causal", "ewok/causal"):
    assert [(step, round(v, 5)) for step, v in tb[f"zero_shot/{name}"]] == [
        (r["step"], round(r["zero_shot"][name], 5)) for r in curve]


def _tensorboard_scalars(folder) -> dict[str, list]:
  """tag -> [(step, value)] read from the TFRecord event files (no TensorBoard needed)."""
  import struct
  from tensorboardX.proto import event_pb2
  out = {}
  for path in sorted(folder.iterdir()):
    data, i = path.read_bytes(), 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4  # length, its crc, the event, its crc
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def test_end_point_equals_eval_of_the_checkpoint(trained):
  workdir, records = trained
  c = _config()
  c.eval.suites, c.eval.backend, c.eval.max_items = "blimp_fast,ewok", "causal", MAX_ITEMS
  rows = run.run_eval(c, str(workdir))
  end = [r for r in records if "zero_shot" in r][-1]
  assert {f"{r['suite']}/{r['backend']}": r["macro_accuracy"] for r in rows} == end["zero_shot"]
  assert all(r["step"] == STEPS and r["items"] == end["zero_shot_items"][r["suite"]]
             and r["max_items"] == MAX_ITEMS for r in rows)


def test_bad_curve_settings_are_refused(tmp_path):
  from babylm_jax.errors import ConfigError
  from babylm_jax.train.loop import train
  c = _config()
  c.train.eval_suites = "blimp_fast,glue"
  with pytest.raises(ConfigError, match="train.eval_suites entry 'glue' is unknown"):
    train(c, str(tmp_path / "bad"))
  c.train.eval_suites, c.train.eval_suites_backend = "ewok", "mlm"
  with pytest.raises(ConfigError, match="train.eval_suites_backend 'mlm' is unknown"):
    train(c, str(tmp_path / "bad"))
  assert not list((tmp_path / "bad" / "checkpoints").iterdir())  # refused before step 1


def test_tensorboard_writer_loads_without_torch(tmp_path):
  """A run's TensorBoard events are written without importing torch (tensorboardX would import
  it, 2.6 s in every training process, because the export extra installs it); torch still
  imports afterwards for whoever needs it."""
  import subprocess
  import sys
  code = (
      "import sys\n"
      "from babylm_jax.train.metrics import MetricsWriter\n"
      f"w = MetricsWriter({str(tmp_path)!r}, total_steps=10)\n"
      "w.write({'step': 3, 'words_seen': 100, 'val_loss': 4.5, 'val_masked_loss': None,\n"
      "         'val_causal_loss': 4.25}, kind='val')\n"
      "w.close()\n"
      "assert w._tb is not None and 'torch' not in sys.modules, sorted(sys.modules)[:5]\n"
      "import torch\n"
      "print('torch', torch.__version__)\n")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.splitlines()[-1].startswith("torch ")
  tb = _tensorboard_scalars(tmp_path / "tb")
  assert tb["val/val_loss"] == [(3, 4.5)] and tb["val/val_causal_loss"] == [(3, 4.25)]


def test_a_fresh_start_drops_the_records_of_a_run_killed_before_its_first_save(tmp_path):
  """Step-0 records (validation, learning-curve point) of a run killed before any checkpoint
  are not kept beside those the restarted run writes; a resume keeps what precedes its step."""
  from babylm_jax.train.metrics import MetricsWriter
  old = [{"step": 0, "words_seen": 0, "val_loss": 9.0},
         {"step": 50, "words_seen": 900, "val_loss": 6.0},
         {"step": 60, "words_seen": 1000, "val_loss": 5.0}]
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in old))
  w = MetricsWriter(tmp_path, total_steps=100, resume_step=50)
  w.close()
  assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == [0, 50]
  w = MetricsWriter(tmp_path, total_steps=100, resume_step=0)
  w.close()
  assert path.read_text() == "" and w.records == []
