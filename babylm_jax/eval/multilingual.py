"""The BabyLM 2026 multilingual track's zero-shot tasks, per language, and their summary.

The track's pipeline (babylm-org/babylm-eval, multilingual/) runs lm-evaluation-harness on the
groups `zeroshot_eng`, `zeroshot_nld` and `zeroshot_zho` (tasks/zeroshot_babybabellm/). Each
group is a list of tasks; `--config.eval.suites=babylm_multilingual` runs every one of them that
this package can read and has data for (`eval.data.<task>`), and lists the others as missing
with the reason: no data here, or a format we do not read (the *_mubench tasks: HellaSwag,
Winogrande and XStoryCloze, which score an ending after a context).

How lm-eval turns items into a number, which the headlines follow:
  a task        `acc`: the share of items whose correct option has the highest summed
                log-probability, over all items of the task (one number per item, not a
                mean over paradigms). zhoblimp and blimp_nl are groups of one task per
                paradigm aggregated with weight_by_size: true, i.e. the same micro mean.
                lm-eval's English `blimp` group has weight_by_size: False, the mean over its
                67 paradigms (equal to the micro mean on BLiMP's 1,000 pairs each).
  a language    `zeroshot_<lang>`: its tasks' accuracies weighted by their numbers of items
                (weight_by_size: true); the pipeline's README table also prints `avg`, the
                plain mean of the task accuracies (print_results_table.py). Both are given,
                each over the tasks present, with the count, so a partial language is never
                mistaken for the whole.
We count a tie between options as 1/k (report.item_credit); lm-eval's argmax counts it as
correct. Ties are rare with float32 sums and are listed in each report (`ties`).
"""

from __future__ import annotations

import numpy as np

PRESET = "babylm_multilingual"
# zeroshot_<lang>.yaml's tasks, in its order.
LANGUAGES = {
    "eng": ("multiblimp_eng", "blimp", "winogrande_en_mubench", "xstorycloze_en_mubench",
            "hellaswag_en_mubench"),
    "nld": ("multiblimp_nld", "winogrande_nl_mubench", "hellaswag_nl_mubench", "xcomps_nl",
            "blimp_nl", "xstorycloze_nl_mubench"),
    "zho": ("winogrande_zh_mubench", "xstorycloze_zh_mubench", "hellaswag_zh_mubench",
            "xcomps_zh", "zhoblimp"),
}
# The tasks we read (suites.py has their parsers); the rest of LANGUAGES' are listed missing.
READ = ("multiblimp_eng", "multiblimp_nld", "blimp", "blimp_nl", "xcomps_nl", "xcomps_zh",
        "zhoblimp")
TASKS = tuple(dict.fromkeys(t for ts in LANGUAGES.values() for t in ts))
# lm-eval's aggregation of a task's items: the mean over paradigms only for English BLiMP.
MACRO = ("blimp",)
# The pipeline's data sets (its dataset_path), for the notes, and their sizes where known
# here: (paradigms, items). ZhoBLiMP is the copy in ../shared/data/multilingual/zhoblimp (the
# hub's Junrui1202/zhoblimp has the same 118 paradigms); BLiMP is nyu-mll/blimp, the
# original 67 x 1,000 pairs.
SOURCES = {"multiblimp_eng": "jumelet/multiblimp (eng)",
           "multiblimp_nld": "jumelet/multiblimp (nld)", "blimp": "nyu-mll/blimp", "blimp_nl": "juletxara/blimp-nl",
           "xcomps_nl": "fpadovani/xcomps-dataset (comps_nl)",
           "xcomps_zh": "fpadovani/xcomps-dataset (comps_zh)", "zhoblimp": "Junrui1202/zhoblimp"}
SIZES = {"zhoblimp": (118, 35_400), "blimp": (67, 67_000)}
COLUMNS = {t: (t, "accuracy") for t in TASKS}


def missing_reason(task: str) -> str | None:
  """Why `task` cannot run whatever the data (None when we read its format)."""
  if task in READ:
    return None
  return ("no reader for its format yet (an ending scored after a context: lm-eval "
          "multiple_choice with a non-empty doc_to_text)")


def headline(task: str, result: dict) -> float:
  """The task's number as lm-eval reports it, in percent."""
  key = "macro_accuracy" if task in MACRO else "micro_accuracy"
  return 100.0 * result[key]


def check(task: str, task_data) -> dict:
  """Whether the data is the set the pipeline reads, by its size where we know it (the same
  keys as layout.check, so the summary treats both alike)."""
  found = (len(task_data.paradigms), len(task_data.items))
  want = SIZES.get(task)
  name = SOURCES.get(task, task)
  if want is None:
    return dict(official=False, set="multilingual", folder=name, subsets=found[0],
                items=found[1], official_subsets=None, official_items=None)
  return dict(official=found == want, set="multilingual", folder=name, subsets=found[0],
              items=found[1], official_subsets=want[0], official_items=want[1])


def describe(data_set: dict) -> str:
  if data_set["official"]:
    return f"the pipeline's {data_set['folder']}"
  if data_set["official_items"] is None:
    return (f"{data_set['items']:,} items; the size of the pipeline's {data_set['folder']} "
            f"is not known offline, so not checked")
  return (f"not the pipeline's {data_set['folder']}: {data_set['subsets']} subsets, "
          f"{data_set['items']:,} items where it has {data_set['official_subsets']}, "
          f"{data_set['official_items']:,}")


def languages(values: dict[str, dict[str, float | None]], items: dict[str, int],
              backends: list[str]) -> dict:
  """Per language: `zeroshot_<lang>` as lm-eval aggregates it (task accuracies weighted by
  their items) and `avg` (their plain mean, the README table's), over the tasks present.

  `values` is {column: {backend: percent}}, `items` {column: number of items}.
  """
  out = {}
  for lang, tasks in LANGUAGES.items():
    present = [t for t in tasks if t in values]
    per = {}
    for b in backends:
      got = [(values[t][b], items[t]) for t in present if values[t].get(b) is not None]
      if not got:
        per[b] = dict(weighted=None, avg=None)
        continue
      acc, n = np.array(got, np.float64).T
      per[b] = dict(weighted=float(np.sum(acc * n) / np.sum(n)), avg=float(np.mean(acc)))
    out[f"zeroshot_{lang}"] = dict(values=per, tasks=present,
                                   absent=[t for t in tasks if t not in present],
                                   complete=len(present) == len(tasks))
  return out
