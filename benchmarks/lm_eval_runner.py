"""Runs lm-evaluation-harness on an export and writes every item's log-likelihoods as JSON.

Not run by hand: benchmarks/lm_eval_parity.py starts it under the pinned lm_eval python
(tests/pinned_env.py LM_EVAL_PINS), with a folder of task YAMLs it generated:

  PY lm_eval_runner.py --export DIR --include TASK_DIR --tasks a,b --limit N --out FILE

It imports nothing of babylm_jax. It uses only the harness's public entry points
(TaskManager with include_defaults=False so that only the generated tasks exist,
simple_evaluate with the `hf` model, as `lm_eval --model hf` does) and writes:
  prefix     what the HF model class conditions an empty context on: prefix_token_id, the
             tokenizer's bos/eos tokens, and an example sentence's ids with
             add_special_tokens=False (what loglikelihood() puts after the prefix)
  results    lm_eval's per-task and per-group `acc`
  samples    per task: [{doc, lls (one per choice), acc}]
"""

import argparse
import json


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--export", required=True)
  ap.add_argument("--include", required=True)
  ap.add_argument("--tasks", required=True)
  ap.add_argument("--limit", type=int, default=None)
  ap.add_argument("--batch_size", type=int, default=32)
  ap.add_argument("--out", required=True)
  args = ap.parse_args()

  import lm_eval
  from lm_eval.models.huggingface import HFLM
  from lm_eval.tasks import TaskManager

  # The pipeline's zeroshot_model.sh: --model hf --model_args pretrained=...,
  # trust_remote_code=True --num_fewshot 0 (on CPU here, float32).
  lm = HFLM(pretrained=args.export, trust_remote_code=True, device="cpu", dtype="float32",
            batch_size=args.batch_size)
  example = "The cat sleeps."
  prefix = dict(prefix_token_id=lm.prefix_token_id, bos_token=lm.tokenizer.bos_token,
                bos_token_id=lm.tokenizer.bos_token_id, eos_token=lm.tokenizer.eos_token,
                eos_token_id=lm.tokenizer.eos_token_id, backend=lm.backend,
                model_class=type(lm.model).__name__, example=example,
                example_ids_no_special=lm.tok_encode(example, add_special_tokens=False),
                example_ids_default=lm.tok_encode(example))
  manager = TaskManager(include_path=args.include, include_defaults=False)
  out = lm_eval.simple_evaluate(model=lm, tasks=args.tasks.split(","), num_fewshot=0,
                                limit=args.limit, log_samples=True, task_manager=manager,
                                bootstrap_iters=0)
  samples = {task: [dict(doc=s["doc"], lls=[r[0] for r in s["filtered_resps"]],
                         acc=s.get("acc")) for s in rows]
             for task, rows in out["samples"].items()}
  results = {task: r.get("acc,none") for task, r in out["results"].items()}
  with open(args.out, "w") as f:
    json.dump(dict(lm_eval=lm_eval.__version__, prefix=prefix, results=results,
                   samples=samples), f)


if __name__ == "__main__":
  main()
