"""Our zero-shot scores beside the official BabyLM 2025 pipeline's, on one exported model.

  python benchmarks/official_parity.py --export DIR --data SUITE_DIR --pipeline_python PY \
      [--pipeline_dir CHECKOUT] [--suite blimp_fast] [--backends causal,mntp] [--out DIR]

Runs the pipeline's zero-shot runner (`evaluation_pipeline.sentence_zero_shot.run` of
babylm/evaluation-pipeline-2025, importable in PY or from the checkout --pipeline_dir) on the
export with --save_predictions, scores the same suite folder with babylm_jax on the weights of
the same export, and prints per paradigm: the pipeline's accuracy, ours under its tie rule (a
tie is correct), ours as we report it (a tie is 0.5), our ties and the decisions that differ
(`babylm_jax/eval/official.py` does the comparison). The last line is one JSON object: per
backend the largest per-paradigm gap in accuracy points against ours under the pipeline's tie
rule (and as we report it) and the number of differing decisions, measured against the
pipeline's own run. Not part of CI: the pipeline and its dependencies are not installed there.
"""

import argparse
import json
import os
import pathlib
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


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--export", type=pathlib.Path, required=True)
  ap.add_argument("--data", type=pathlib.Path, required=True, help="a suite folder of jsonl")
  ap.add_argument("--pipeline_python", required=True)
  ap.add_argument("--pipeline_dir", default="", help="a checkout of the pipeline, if PY lacks it")
  ap.add_argument("--suite", default="blimp_fast", choices=sorted(official.TASKS))
  ap.add_argument("--backends", default="causal,mntp")
  ap.add_argument("--out", type=pathlib.Path, default=None)
  args = ap.parse_args()
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
    c = official.compare(ours, json.loads((folder / "predictions.json").read_text()),
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
  result["max_diff_points"] = max(b["max_diff_points"] for b in result["backends"].values())
  print(json.dumps(result))


if __name__ == "__main__":
  main()
