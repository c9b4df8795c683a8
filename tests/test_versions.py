"""versions.json: the libraries and device a run used, one entry per mode, kept across modes."""

import importlib.metadata
import json
import platform

import jax

from babylm_jax import versions


def test_each_mode_records_what_it_runs_with_and_keeps_the_others(tmp_path):
  (tmp_path / versions.FILE_NAME).write_text(json.dumps(
      {"train": {"jax": "0.0.1", "device_kind": "TPU v4"}}))  # trained elsewhere, earlier
  entry = versions.record(str(tmp_path), "eval")
  saved = versions.read(str(tmp_path))
  assert list(saved) == ["train", "eval"] and saved["eval"] == entry
  assert saved["train"] == {"jax": "0.0.1", "device_kind": "TPU v4"}
  for name in ("jax", "flax", "optax", "orbax-checkpoint", "tokenizers", "numpy"):
    assert entry[name] == importlib.metadata.version(name), name
  assert entry["jax"] == jax.__version__ and entry["python"] == platform.python_version()
  assert entry["device_kind"] == jax.devices()[0].device_kind
  assert entry["devices"] == jax.device_count() and entry["time"].endswith("Z")
  line = versions.line(entry)
  assert line.startswith(f"jax {jax.__version__}, flax {entry['flax']}, optax ")
  assert f"orbax-checkpoint {entry['orbax-checkpoint']}" in line
  assert line.endswith(f"python {entry['python']} on {entry['device_kind']} "
                       f"({entry['devices']} device{'s' if entry['devices'] != 1 else ''})")
  assert not list(tmp_path.glob(".*.tmp"))


def test_unreadable_or_absent_file_reads_as_nothing_recorded(tmp_path):
  assert versions.read(str(tmp_path)) == {}
  (tmp_path / versions.FILE_NAME).write_text("{not json")
  assert versions.read(str(tmp_path)) == {}
  versions.record(str(tmp_path), "finetune")  # and is replaced by a good one
  assert list(versions.read(str(tmp_path))) == ["finetune"]
