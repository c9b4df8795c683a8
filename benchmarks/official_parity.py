"""Our zero-shot scores beside the official BabyLM 2025 pipeline's, on one exported model.

  python benchmarks/official_parity.py --export DIR --data SUITE_DIR --pipeline_python PY \
      [--pipeline_dir CHECKOUT] [--suite blimp_fast] [--backends causal,mntp] [--out DIR]
  python benchmarks/official_parity.py --submission DIR --pipeline_dir CHECKOUT \
      --pipeline_python PY

Runs the pipeline's zero-shot runner (`evaluation_pipeline.sentence_zero_shot.run` of
babylm/evaluation-pipeline-2025, importable in PY or from the checkout --pipeline_dir) on the
export with --save_predictions, scores the same suite folder with babylm_jax on the weights of
the same export, and prints per paradigm: the pipeline's accuracy, ours under its tie rule (a
tie is correct), ours as we report it (a tie is 0.5), our ties and the decisions that differ
(`babylm_jax/eval/official.py` does the comparison). The last line is one JSON object: per
backend the largest per-paradigm gap in accuracy points against ours under the pipeline's tie
rule (and as we report it) and the number of differing decisions, measured against the
pipeline's own run. The WUG suites (wug_adj, wug_past) have no correct option: per item the
pipeline's `prob` of the first sentence against ours, the chosen sentences, and Spearman's rho
of each with people's ratios. COMPS is compared like the sentence tasks (its prediction is the
whole sentence).

With --submission, the pipeline's own collate_preds.py runs on a folder written by
--mode=submit (for each backend in its submission.json, with the track and fast_eval folder
recorded there) and the last line says whether collate accepted it, every complaint it printed,
and those complaints that submission.json does not list as missing (which should be none).
collate_preds imports numpy, scipy, pandas and statsmodels (tests/pinned_env.py COLLATE_PINS).

Not part of CI: the pipeline and its dependencies are not installed there.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flax import nnx  # noqa: E402

from babylm_jax.config import base_config  # noqa: E402
from babylm_jax.eval import official, run, scoring, suites  # noqa: E402
from babylm_jax.export import hf  # noqa: E402
from babylm_jax.model import hf_weights  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402

# Our backend -> the pipeline's (its 'mlm' reads a masked token at its own position: our pll).
BACKENDS = {"causal": "causal", "mntp": "mntp", "pll": "mlm"}


def our_scorer(export: pathlib.Path):
  """(babylm_jax's scorer on the export's weights, the export's tokenizer)."""
  from tokenizers import Tokenizer
  config = base_config()
  for k, v in hf_weights.model_fields_from_hf(export).items():
    config.model[k] = v
  model = GPTBert(config.model, rngs=nnx.Rngs(0))
  nnx.update(model, hf.load_from_hf(export, config))
  tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
  return scoring.Scorer(model, config.model.max_position, config.eval.tokens_per_batch), tokenizer


def pipeline_run(args, backend: str, out: pathlib.Path) -> pathlib.Path:
  """Runs the pipeline on the export; returns the folder of its report and predictions."""
  task = official.TASKS[args.suite]
  cmd = [args.pipeline_python, "-m", "evaluation_pipeline.sentence_zero_shot.run",
         "--data_path", str(args.data), "--task", task, "--backend", BACKENDS[backend],
         "--model_path_or_name", str(args.export), "--output_dir", str(out),
         "--save_predictions"]
  env = dict(os.environ, HF_HUB_OFFLINE="1")
  if args.pipeline_dir:
    env["PYTHONPATH"] = str(pathlib.Path(args.pipeline_dir).resolve())
  subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL)
  return out / args.export.stem / "main" / "zero_shot" / BACKENDS[backend] / task / args.data.stem


# collate_preds.py's words for a missing file -> our task name.
COLLATE_NAMES = {"blimp": "blimp", "blimp supplement": "supplement", "ewok": "ewok",
                 "entity tracking": "entity_tracking", "wug adj nominalization": "wug_adj",
                 "wug past tense": "wug_past", "comps": "comps", "reading": "reading",
                 "AoA surprisal": "aoa", **{t: t for t in ("boolq", "mnli", "mrpc", "multirc",
                                                           "qqp", "rte", "wsc")}}


def collate(args) -> dict:
  """Runs the official collate_preds.py on a --mode=submit folder, per backend."""
  folder = args.submission.resolve()
  manifest = json.loads((folder / "submission.json").read_text())
  expected = {m["task"] for m in manifest["missing"]}
  env = dict(os.environ, PYTHONPATH=str(pathlib.Path(args.pipeline_dir).resolve()))
  out = dict(submission=str(folder), backends={})
  for backend in manifest["backends"]:
    cmd = [args.pipeline_python, "-m", "evaluation_pipeline.collate_preds",
           "--model_path_or_name", manifest["model_name"], "--backend", backend,
           "--results_dir", "results", "--fast", "--track", manifest["track"].replace("_", "-"),
           "--fast_eval_dir", str(pathlib.Path(manifest["data_root"]) / "fast_eval")]
    print("$ (cd", folder, "&& python", " ".join(cmd[1:]) + ")")
    res = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    print(res.stdout + res.stderr)
    complaints = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    last = (res.stderr.strip().splitlines() or [""])[-1]
    if res.returncode != 0 and last:
      complaints.append(last)
    tasks = [COLLATE_NAMES.get(m.group(1)) for c in complaints
             if (m := re.match(r"The (.+) data is missing!$", c))]
    unexplained = [c for c in complaints
                   if not ((m := re.match(r"The (.+) data is missing!$", c))
                           and COLLATE_NAMES.get(m.group(1)) in expected)
                   and not c.startswith("AssertionError: The directory for full results")]
    out["backends"][backend] = dict(accepted=res.returncode == 0, complaints=complaints,
                                    missing_tasks=tasks, unexplained=unexplained)
  out["accepted"] = all(b["accepted"] for b in out["backends"].values())
  out["unexplained"] = sum(len(b["unexplained"]) for b in out["backends"].values())
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--export", type=pathlib.Path)
  ap.add_argument("--data", type=pathlib.Path, help="a suite folder of jsonl")
  ap.add_argument("--submission", type=pathlib.Path, default=None,
                  help="a --mode=submit folder: run the official collate_preds on it")
  ap.add_argument("--pipeline_python", required=True)
  ap.add_argument("--pipeline_dir", default="", help="a checkout of the pipeline, if PY lacks it")
  ap.add_argument("--suite", default="blimp_fast", choices=sorted(official.TASKS))
  ap.add_argument("--backends", default="causal,mntp")
  ap.add_argument("--out", type=pathlib.Path, default=None)
  args = ap.parse_args()
  if args.submission is not None:
    if not args.pipeline_dir:
      ap.error("--submission needs --pipeline_dir, the pipeline's checkout")
    print(json.dumps(collate(args)))
    return
  if args.export is None or args.data is None:
    ap.error("--export and --data are needed (or --submission)")
  args.export, args.data = args.export.resolve(), args.data.resolve()
  out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="official_parity-"))
  out.mkdir(parents=True, exist_ok=True)
  suite = suites.load_suite(args.suite, str(args.data))
  scorer, tokenizer = our_scorer(args.export)

  result = dict(suite=args.suite, items=len(suite.items), backends={})
  for backend in args.backends.split(","):
    scores = run.score_suite(scorer, tokenizer, suite, backend)
    ours = official.our_items(args.suite, args.data, scores)
    (out / f"ours-{backend}.json").write_text(json.dumps(ours))
    folder = pipeline_run(args, backend, out)
    predictions = json.loads((folder / "predictions.json").read_text())
    if args.suite in official.WUGS:
      c = official.compare_wug(args.suite, args.data, ours, predictions)
      print(f"\n{backend}: {c['items']} items, {c['differing_decisions']} differing decisions, "
            f"largest |prob difference| {c['max_prob_diff']:.2e}, rho official "
            f"{c['official_rho']} ours {c['ours_rho']}")
      result["backends"][backend] = c
      continue
    c = official.compare(ours, predictions,
                         official.read_report(folder / "best_temperature_report.txt"))
    print(f"\n{backend}: {'paradigm':<50} {'items':>6} {'official':>8} {'ours*':>8} "
          f"{'ours':>8} {'ties':>5} {'differ':>6}   (* ties correct, as the pipeline counts)")
    for name, p in c["paradigms"].items():
      print(f"{'':<9}{name:<50} {p['items']:6d} {p['official']:8.2f} "
            f"{p['ours_ties_correct']:8.2f} {p['ours']:8.2f} {p['ties']:5d} "
            f"{p['differing_decisions']:6d}")
    result["backends"][backend] = {k: c[k] for k in ("differing_decisions", "ties",
                                                      "max_diff_points",
                                                      "max_diff_points_ties_half")}
  result["differing_decisions"] = sum(b["differing_decisions"]
                                      for b in result["backends"].values())
  result["max_diff_points"] = max(b.get("max_diff_points", b.get("max_prob_diff"))
                                 for b in result["backends"].values())
  print(json.dumps(result))


if __name__ == "__main__":
  main()
