"""Every file of every zero-shot suite parses; a malformed line names its file and line."""

import pytest

from babylm_jax.config import base_config
from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval import layout, reading, run, suites
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
  assert run.resolve_tasks("babylm_fast,comps")[-1] == ("comps", None)
  assert dict(run.resolve_tasks("babylm_fast,comps"))["reading"] == "babylm_fast"
  with pytest.raises(ConfigError, match="eval.suites entry 'glue'"):
    run.parse_suites("blimp,glue")
  with pytest.raises(ConfigError, match="names the presets babylm and babylm_fast; name one"):
    run.parse_suites("babylm,babylm_fast")


@pytest.mark.parametrize("task,folder,files,sets,official,data_set", [
    # The original BLiMP (67,000 pairs) is not blimp_filtered (59,875).
    ("blimp", "blimp", None, (layout.FULL,), False, layout.FULL),
    ("blimp_fast", "babylm_eval/fast_eval/blimp_fast", None, (layout.FAST,), True, layout.FAST),
    # Named on its own, a column may be either official set; the fast one fits.
    ("supplement", "babylm_eval/fast_eval/supplement_fast", None, (layout.FULL, layout.FAST),
     True, layout.FAST),
    ("ewok", "babylm_eval/fast_eval/ewok_fast", None, (layout.FULL,), False, layout.FULL),
    ("ewok", "babylm_eval/fast_eval/ewok_fast", None, (layout.FAST,), True, layout.FAST),
    ("entity_tracking", "babylm_eval/entity_tracking", None, (layout.FULL,), True, layout.FULL),
    # All three splits are not the fast set; the regular split alone is.
    ("entity_tracking", "babylm_eval/entity_tracking", None, (layout.FAST,), False,
     layout.FAST),
    ("entity_tracking", "babylm_eval/entity_tracking", ("regular.jsonl",), (layout.FAST,), True,
     layout.FAST),
    ("wug_adj", "babylm_eval/wug_adj_nominalization", None, (layout.FULL, layout.FAST), True,
     layout.FULL),
])
def test_official_sets_are_told_by_their_counts(task, folder, files, sets, official, data_set):
  suite = suites.load_suite(task, str(data_path(folder)), files)
  got = layout.check(task, sets, suite)
  assert (got["official"], got["set"]) == (official, data_set)
  assert (got["subsets"], got["items"]) == (len(suite.paradigms), len(suite.items))
  text = layout.describe(got)
  assert text.startswith("the official" if official else "not the official")
  # Fewer items (eval.max_items) are never the official set.
  assert not layout.check(task, sets, suites.subset(suite, 50))["official"]


def test_official_sizes_of_the_reading_data_and_the_original_blimp():
  data = reading.load(str(data_path("babylm_eval/reading")))
  assert layout.check("reading", (layout.FULL,), data)["official"]
  got = layout.check("blimp", (layout.FULL,), suites.load_suite("blimp", str(data_path("blimp"))))
  assert layout.describe(got) == ("not the official full set: 67 subsets, 67,000 items where "
                                  "blimp_filtered has 67, 59,875")


def _layout_of(root, links: dict):
  """An evaluation_data folder whose entries (`full_eval/x`) link to shared data folders."""
  for entry, folder in links.items():
    (root / entry).parent.mkdir(parents=True, exist_ok=True)
    (root / entry).symlink_to(data_path(folder))
  return root


def test_presets_read_the_official_layout(tmp_path):
  """Each preset reads its folders under eval.data_root by the official names; the fast
  entity tracking is regular.jsonl alone; absent folders are missing, with their path."""
  root = _layout_of(tmp_path / "evaluation_data", {
      "fast_eval/blimp_fast": "babylm_eval/fast_eval/blimp_fast",
      "fast_eval/entity_tracking_fast": "babylm_eval/entity_tracking",  # all three splits
      "full_eval/entity_tracking": "babylm_eval/entity_tracking",
      "full_eval/wug_adj_nominalization": "babylm_eval/wug_adj_nominalization"})
  c = base_config()
  c.eval.data_root = str(root)
  c.eval.suites = "babylm_fast"
  srcs = {s.task: s for s in run.sources(c)}
  assert {t: (s.folder, s.files) for t, s in srcs.items()} == {
      t: (str(root / "fast_eval" / f), ("regular.jsonl",) if t == "entity_tracking" else None)
      for t, f in [("blimp_fast", "blimp_fast"), ("supplement", "supplement_fast"),
                   ("ewok", "ewok_fast"), ("entity_tracking", "entity_tracking_fast"),
                   ("wug_adj", "wug_adj_nominalization"), ("wug_past", "wug_past_tense"),
                   ("reading", "reading")]}
  loaded, missing = run.load_tasks(c)
  by = {src.task: data for data, src in loaded}
  assert sorted(by) == ["blimp_fast", "entity_tracking"]
  assert by["entity_tracking"].paradigms == [f"regular_{k}_ops" for k in range(6)]
  assert layout.check("entity_tracking", (layout.FAST,), by["entity_tracking"])["official"]
  assert [m["task"] for m in missing] == ["supplement", "ewok", "wug_adj", "wug_past",
                                          "reading"]
  assert missing[0]["folder"] == str(root / "fast_eval" / "supplement_fast")
  assert "--config.eval.data_root" in missing[0]["hint"] and "fast_eval/supplement_fast" in \
      missing[0]["hint"]

  c.eval.suites = "babylm"
  loaded, missing = run.load_tasks(c)
  assert [src.task for _, src in loaded] == ["entity_tracking", "wug_adj"]
  assert len(loaded[0][0].paradigms) == 18  # the full set: every split
  assert missing[0]["folder"] == str(root / "full_eval" / "blimp_filtered")
  assert missing[-1]["folder"] == str(root / "full_eval" / "reading")
  # A task named on its own still reads eval.data.<task>.
  c.eval.suites = "babylm,blimp_fast"
  c.eval.data.blimp_fast = str(data_path("babylm_eval/fast_eval/blimp_fast"))
  assert {src.task: src.folder for _, src in run.load_tasks(c)[0]}["blimp_fast"] == \
      c.eval.data.blimp_fast
  c.eval.data_root = str(tmp_path / "nowhere")
  c.eval.suites = "babylm"
  with pytest.raises(DataError, match="no task of eval.suites 'babylm' has its data; no "):
    run.load_tasks(c)


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


def test_a_suite_can_be_one_jsonl_file_of_its_folder():
  # eval.data.entity_tracking=.../regular.jsonl scores the official fast set's items alone.
  folder = data_path("babylm_eval/entity_tracking")
  one = suites.load_suite("entity_tracking", str(folder / "regular.jsonl"))
  named = suites.load_suite("entity_tracking", str(folder), names=("regular.jsonl",))
  whole = suites.load_suite("entity_tracking", str(folder))
  assert one == named
  assert [m["name"] for m in one.files] == ["regular.jsonl"]
  assert 0 < len(one.items) < len(whole.items)
