"""Every file of every zero-shot suite parses; a malformed line names its file and line."""

import pytest

from babylm_jax.config import base_config
from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval import run, suites
from conftest import data_path

FOLDERS = {
    "blimp": "blimp",
    "blimp_fast": "babylm_eval/fast_eval/blimp_fast",
    "supplement": "babylm_eval/fast_eval/supplement_fast",
    "ewok": "babylm_eval/fast_eval/ewok_fast",
    "entity_tracking": "babylm_eval/entity_tracking",
    "wug_adj": "babylm_eval/wug_adj_nominalization",
}


@pytest.mark.parametrize("name", list(FOLDERS))
def test_every_file_parses(name):
  folder = data_path(FOLDERS[name])
  suite = suites.load_suite(name, str(folder))
  on_disk = sorted(p.name for p in folder.glob("*.jsonl"))
  assert [f["name"] for f in suite.files] == on_disk
  lines = sum(sum(1 for l in open(folder / n) if l.strip()) for n in on_disk)
  assert len(suite.items) == lines  # every line became an item
  assert all(len(f["sha256"]) == 64 for f in suite.files)
  for item in suite.items:
    assert len(item.options) >= 2 and all(o.strip() for o in item.options)
  if name == "blimp":
    assert len(suite.paradigms) == 67 and len(suite.items) == 67_000
  if name == "blimp_fast":
    assert len(suite.paradigms) == 67 and len(suite.items) == 13_400
  if name == "supplement":
    assert len(suite.paradigms) == 5
  if name == "ewok":
    assert suite.paradigms == sorted(p.stem for p in folder.glob("*.jsonl"))
    assert all(item.context for item in suite.items)
  if name == "entity_tracking":  # the official subsets: file x number of operations
    assert suite.paradigms == sorted(f"{f}_{k}_ops" for f in ("ambiref", "move_contents",
                                                            "regular") for k in range(6))
    assert all(item.context and len(item.options) == 5 for item in suite.items)


def test_default_config_paths_are_the_suites():
  c = base_config()
  assert sorted(c.eval.data.keys()) == sorted(run.TASKS)
  assert run.parse_suites("blimp, ewok") == ["blimp", "ewok"]
  assert run.parse_suites("babylm") == ["blimp", "supplement", "ewok", "entity_tracking",
                                        "wug_adj", "wug_past", "comps", "reading"]
  # A task named besides a preset is required; the preset's others are optional.
  assert run.resolve_tasks("babylm_fast,comps")[-1] == ("comps", True)
  assert dict(run.resolve_tasks("babylm_fast,comps"))["reading"] is False
  with pytest.raises(ConfigError, match="eval.suites entry 'glue'"):
    run.parse_suites("blimp,glue")


@pytest.mark.parametrize("name,bad,match", [
    ("blimp_fast", "{not json", r"line 3 is not valid JSON"),
    ("blimp_fast", '{"sentence_good": "A cat.", "UID": "x"}', r"line 3 has no non-empty "
                                                              r"string field 'sentence_bad'"),
    ("ewok", '{"Context1": "x", "Target1": "y", "Target2": ""}', r"line 3 .*'Target2'"),
    ("entity_tracking", '{"input_prefix": "Box 0 contains ", "options": ["a"]}',
     r"line 3 needs 'options'"),
    ("entity_tracking", '{"input_prefix": "Box 0 contains ", "options": ["a", "b"]}',
     r"line 3 needs an integer 'numops'"),
    ("supplement", "[1, 2]", r"line 3 is not a JSON object"),
])
def test_malformed_line_names_file_and_line(tmp_path, name, bad, match):
  src = sorted(data_path(FOLDERS[name]).glob("*.jsonl"))[0]
  lines = src.read_text().splitlines()[:5]
  lines[2] = bad
  (tmp_path / src.name).write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=match) as e:
    suites.load_suite(name, str(tmp_path))
  assert src.name in str(e.value)


def test_missing_or_empty_folder(tmp_path):
  with pytest.raises(DataError, match="--config.eval.data.ewok"):
    suites.load_suite("ewok", str(tmp_path / "nope"))
  with pytest.raises(DataError, match="holds no .jsonl files"):
    suites.load_suite("ewok", str(tmp_path))
