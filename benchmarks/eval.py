"""Zero-shot scoring speed with the strict_small model: blimp_fast by default, any task.

Random weights (speed does not depend on them) and a byte-level BPE of the model's vocabulary
size trained on the shared text. For each task and backend it prints items per second and
the model FLOP/s reached (real tokens only, see scoring.useful_flops) as a fraction of the
float32 matmul peak measured in the same run. Compilation is timed apart: each batch shape
is compiled once on a warm-up set, then the scores are forgotten and the task is scored. The
reading task is timed as it runs: every word (and previous word) in its context, the masked
backends with the three-mask ending, in one packed pass.

  python benchmarks/eval.py [--tasks blimp_fast,wug_adj,reading|babylm] [--limit ITEMS]
                            [--tokens_per_batch N] [--backends causal,mntp] [--suite_dir DIR]

`--limit` times the first ITEMS items of each task (words for reading); `projected_seconds`
scales each timing to the whole task, and `projected_total_seconds` adds them up: the time
of the whole evaluation of these tasks and backends. The last line is one JSON object.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
from flax import nnx  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from babylm_jax.config import SPECIAL_TOKENS  # noqa: E402
from babylm_jax.eval import reading, run, scoring, suites  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402
from babylm_jax.train.flops import matmul_flops_per_cpu_second, measure_matmul_peak  # noqa: E402
from configs.strict_small import get_config  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def train_tokenizer(vocab_size: int) -> Tokenizer:
  files = sorted(str(p) for p in (DATA / "babylm_text" / "train_1M").glob("*.train"))
  tok = Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train(files, trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  return tok


def task_sequences(tok, name: str, folder: str, limit: int | None, max_len: int):
  """(sequences of the first `limit` items, ending, items timed, items in the task)."""
  if name == "reading":
    data = reading.load(folder)
    n = len(data.words)
    k = min(limit or n, n)
    cut = {f.name: getattr(data, f.name)[:k] for f in dataclasses.fields(data)
           if f.name in ("contexts", "words", "prev_contexts", "prev_words")}
    data = dataclasses.replace(data, **cut)
    return reading.sequences(tok, data, max_len)[0], reading.MASK_ENDING, k, n
  suite = suites.load_suite(name, folder)
  n = len(suite.items)
  k = min(limit or n, n)
  suite = dataclasses.replace(suite, items=suite.items[:k])
  return run.suite_sequences(tok, suite, max_len), 0, k, n


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--tasks", default="blimp_fast",
                  help="comma list of tasks or presets (babylm, babylm_fast)")
  ap.add_argument("--suite_dir", default=None, help="data folder (one task only)")
  ap.add_argument("--tokens_per_batch", type=int, default=None)
  ap.add_argument("--limit", type=int, default=None, help="score only this many items")
  ap.add_argument("--backends", default="causal,mntp", help="comma-separated backends to time")
  args = ap.parse_args()

  config = get_config()
  max_len = config.model.max_position
  tokens_per_batch = args.tokens_per_batch or config.eval.tokens_per_batch
  tasks = [(name, args.suite_dir or str(ROOT / config.eval.data[name]))
           for name in run.parse_suites(args.tasks)]
  tasks = [(n, f) for n, f in tasks if pathlib.Path(f).exists()]  # a preset's present ones
  tok = train_tokenizer(config.model.vocab_size)
  model = GPTBert(config.model, rngs=nnx.Rngs(0))
  peak = measure_matmul_peak("float32")
  matmul_cpu = matmul_flops_per_cpu_second()
  print(f"devices {jax.devices()}; float32 matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
  result = dict(tokens_per_batch=tokens_per_batch, matmul_peak_gflops=round(peak / 1e9, 2),
                limit=args.limit, tasks={})
  scorer = scoring.Scorer(model, max_len, tokens_per_batch)
  total = 0.0
  for name, folder in tasks:
    seqs, ending, timed, items = task_sequences(tok, name, folder, args.limit, max_len)
    # One sequence per length bucket compiles every shape the full run will use (short ones
    # all share the packed row shape).
    warm = {scoring.bucket_len(len(s[0]) + ending, max_len): s for s in seqs}
    task = dict(items=items, timed_items=timed, sequences=len(seqs),
                distinct_sequences=len(set(seqs)), longest=max(len(s[0]) for s in seqs))
    for backend in args.backends.split(","):
      scorer.reset()
      t0 = time.perf_counter()
      scorer.score(list(warm.values()), backend, ending)
      compile_s = time.perf_counter() - t0
      scorer.reset()
      # The host may be shared: the wall-clock peak is measured just before and after the
      # run and averaged; FLOPs per CPU-second against the matmul's are less sensitive.
      peak_before = measure_matmul_peak("float32", repeats=5)
      t0, c0 = time.perf_counter(), time.process_time()
      scorer.score(seqs, backend, ending)
      seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
      peak_run = (peak_before + measure_matmul_peak("float32", repeats=5)) / 2
      flops = scoring.useful_flops(config.model, scorer.stats)
      st = scorer.stats
      task[backend] = dict(
          seconds=round(seconds, 2), compile_seconds=round(compile_s, 2),
          items_per_s=round(timed / seconds, 1),
          projected_seconds=round(seconds * items / timed, 1),
          model_gflops=round(flops / seconds / 1e9, 2),
          peak_gflops_during=round(peak_run / 1e9, 2),
          fraction_of_peak=round(flops / seconds / peak_run, 3),
          fraction_of_peak_cpu_time=round(flops / cpu_seconds / matmul_cpu, 3),
          padding_fraction=round(1 - st["real_tokens"] / st["padded_tokens"], 3),
          rows=st["rows"])
      total += task[backend]["projected_seconds"]
      print(f"{name}/{backend}: {task[backend]}", flush=True)
    result["tasks"][name] = task
  result["projected_total_seconds"] = round(total, 1)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
