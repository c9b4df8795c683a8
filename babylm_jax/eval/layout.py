"""The official BabyLM 2025 evaluation data: where its folders lie and how big its sets are.

The pipeline (babylm/evaluation-pipeline-2025) reads one `evaluation_data` folder; its
eval_zero_shot.sh reads `full_eval/`, eval_zero_shot_fast.sh `fast_eval/`, eval_finetuning.sh
`full_eval/glue_filtered/`. The `babylm` and `babylm_fast` presets read the same folders under
`eval.data_root`:

  task             full_eval/ (babylm)        fast_eval/ (babylm_fast)
  blimp            blimp_filtered             -
  blimp_fast       -                          blimp_fast
  supplement       supplement_filtered        supplement_fast
  ewok             ewok_filtered              ewok_fast
  entity_tracking  entity_tracking            entity_tracking_fast (regular.jsonl only)
  wug_adj          wug_adj_nominalization     wug_adj_nominalization
  wug_past         wug_past_tense             wug_past_tense
  comps            comps                      -
  reading          reading/reading_data.csv   reading/reading_data.csv

The fast entity tracking is the `regular` split alone: the pipeline's collate reads
`entity_tracking_fast/regular.jsonl` and expects its six `regular_<k>_ops` subsets.

Whether a column was computed on an official set is decided as the pipeline's collate_preds
checks a submission: by the number of subsets (paradigms, UIDs) and of items. SIZES holds
those numbers (summed from its per-subset tables); a set cut by eval.max_items, the original
BLiMP (67,000 pairs, where blimp_filtered has 59,875) or any other file is not the official
set.
"""

from __future__ import annotations

import dataclasses
import os

FULL, FAST = "full", "fast"
LAYOUT = {
    FULL: {"blimp": "blimp_filtered", "supplement": "supplement_filtered",
           "ewok": "ewok_filtered", "entity_tracking": "entity_tracking",
           "wug_adj": "wug_adj_nominalization", "wug_past": "wug_past_tense", "comps": "comps",
           "reading": "reading"},
    FAST: {"blimp_fast": "blimp_fast", "supplement": "supplement_fast", "ewok": "ewok_fast",
           "entity_tracking": "entity_tracking_fast", "wug_adj": "wug_adj_nominalization",
           "wug_past": "wug_past_tense", "reading": "reading"},
}
PRESETS = {"babylm": FULL, "babylm_fast": FAST}
# Files a preset reads of a folder (the others are ignored); every .jsonl when not listed.
FILES = {(FAST, "entity_tracking"): ("regular.jsonl",)}


@dataclasses.dataclass(frozen=True)
class Size:
  subsets: int
  items: int


SIZES = {
    FULL: {"blimp": Size(67, 59_875), "supplement": Size(5, 5_218), "ewok": Size(11, 7_618),
           "entity_tracking": Size(18, 9_483), "wug_adj": Size(1, 200), "wug_past": Size(1, 50),
           "comps": Size(4, 91_028), "reading": Size(1, 1_726)},
    # 200 pairs per BLiMP paradigm, 50 per supplement subset, 100 per EWoK domain.
    FAST: {"blimp_fast": Size(67, 13_400), "supplement": Size(5, 250), "ewok": Size(11, 1_100),
           "entity_tracking": Size(6, 3_152), "wug_adj": Size(1, 200), "wug_past": Size(1, 50),
           "reading": Size(1, 1_726)},
}
# (Super)GLUE validation examples per task (full_eval/glue_filtered/<task>.valid.jsonl).
GLUE_SIZES = {"boolq": 1_635, "mnli": 4_908, "mrpc": 204, "multirc": 2_424, "qqp": 20_215,
              "rte": 139, "wsc": 52}
# The summary's columns that make up each official set's leaderboard (GLUE: all seven tasks).
COLUMNS = {
    FULL: ("blimp", "supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "comps",
           "reading_eye_tracking", "reading_self_paced", "glue"),
    FAST: ("blimp_fast", "supplement", "ewok", "entity_tracking", "wug_adj", "wug_past",
           "reading_eye_tracking", "reading_self_paced"),
}


def sets_of(task: str) -> tuple[str, ...]:
  """The official sets a task's column appears in (full first)."""
  return tuple(s for s in (FULL, FAST) if task in LAYOUT[s])


def place(data_root: str, data_set: str, task: str) -> tuple[str, tuple[str, ...] | None]:
  """(the folder the layout puts `task` in, the files read of it or None for all)."""
  return (os.path.join(os.path.expanduser(data_root), f"{data_set}_eval",
                       LAYOUT[data_set][task]), FILES.get((data_set, task)))


def size_of(task_data) -> Size:
  """The subsets and items of a loaded suite (suites.Suite) or of the reading data."""
  if hasattr(task_data, "paradigms"):
    return Size(len(task_data.paradigms), len(task_data.items))
  return Size(1, len(task_data.words))


def check(task: str, sets: tuple[str, ...], task_data) -> dict:
  """Whether `task_data` is `task`'s official set of one of `sets` (the first that fits).

  {'official': bool, 'set': the set it is (or the first asked for), 'folder': that set's
  folder name, 'subsets', 'items' (found), 'official_subsets', 'official_items'}.
  """
  found = size_of(task_data)
  fits = [s for s in sets if SIZES[s].get(task) == found]
  data_set = (fits or list(sets))[0]
  want = SIZES[data_set][task]
  return dict(official=bool(fits), set=data_set, folder=LAYOUT[data_set][task],
              subsets=found.subsets, items=found.items, official_subsets=want.subsets,
              official_items=want.items)


def describe(check_result: dict) -> str:
  """'official full set' or why not, in a few words, for the summary's notes."""
  c = check_result
  if c["official"]:
    return f"the official {c['set']} set ({c['folder']})"
  return (f"not the official {c['set']} set: {c['subsets']} subsets, {c['items']:,} items "
          f"where {c['folder']} has {c['official_subsets']}, {c['official_items']:,}")
