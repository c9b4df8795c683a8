"""Zero-shot scoring speed: blimp_fast (13,400 pairs) with the strict_small model.

Random weights (speed does not depend on them) and a byte-level BPE of the model's vocabulary
size trained on the shared text. For the causal and mntp backends it prints pairs per second
and the model FLOP/s reached (real tokens only, see scoring.useful_flops) as a fraction of the
float32 matmul peak measured in the same run. Compilation is timed apart: each batch shape
is compiled once on a warm-up set, then the scores are forgotten and the suite is scored.

  python benchmarks/eval.py [--suite_dir DIR] [--tokens_per_batch N] [--limit PAIRS]
                            [--backends causal,mntp]

The last line is one JSON object.
"""

import argparse
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
from babylm_jax.eval import scoring, suites  # noqa: E402
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


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--suite_dir", default=str(DATA / "babylm_eval/fast_eval/blimp_fast"))
  ap.add_argument("--tokens_per_batch", type=int, default=None)
  ap.add_argument("--limit", type=int, default=None, help="score only this many pairs")
  ap.add_argument("--backends", default="causal,mntp", help="comma-separated backends to time")
  args = ap.parse_args()

  config = get_config()
  tokens_per_batch = args.tokens_per_batch or config.eval.tokens_per_batch
  suite = suites.load_suite("blimp_fast", args.suite_dir)
  items = suite.items[:args.limit] if args.limit else suite.items
  tok = train_tokenizer(config.model.vocab_size)
  texts = [o for it in items for o in it.options]
  seqs = scoring.tokenize(tok, [""] * len(texts), texts, config.model.max_position)
  model = GPTBert(config.model, rngs=nnx.Rngs(0))
  peak = measure_matmul_peak("float32")
  matmul_cpu = matmul_flops_per_cpu_second()
  print(f"devices {jax.devices()}; float32 matmul peak {peak / 1e9:.1f} GFLOP/s; "
        f"{len(items)} pairs, {len(set(seqs))} distinct sentences", flush=True)

  # One sequence per length bucket compiles every shape the full run will use (short ones
  # all share the packed row shape).
  warm = {scoring.bucket_len(len(s[0]), config.model.max_position): s for s in seqs}
  result = dict(pairs=len(items), tokens_per_batch=tokens_per_batch,
                matmul_peak_gflops=round(peak / 1e9, 2),
                longest_sentence=max(len(s[0]) for s in seqs))
  scorer = scoring.Scorer(model, config.model.max_position, tokens_per_batch)
  for backend in args.backends.split(","):
    t0 = time.perf_counter()
    scorer.score(list(warm.values()), backend)
    compile_s = time.perf_counter() - t0
    scorer.reset()
    # The host may be shared: the wall-clock peak is measured just before and after the run
    # and averaged; FLOPs per CPU-second against the matmul's are less sensitive to others.
    peak_before = measure_matmul_peak("float32", repeats=5)
    t0, c0 = time.perf_counter(), time.process_time()
    scorer.score(seqs, backend)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    peak_run = (peak_before + measure_matmul_peak("float32", repeats=5)) / 2
    flops = scoring.useful_flops(config.model, scorer.stats)
    st = scorer.stats
    result[backend] = dict(
        seconds=round(seconds, 2), compile_seconds=round(compile_s, 2),
        pairs_per_s=round(len(items) / seconds, 1),
        model_gflops=round(flops / seconds / 1e9, 2),
        peak_gflops_during=round(peak_run / 1e9, 2),
        fraction_of_peak=round(flops / seconds / peak_run, 3),
        fraction_of_peak_cpu_time=round(flops / cpu_seconds / matmul_cpu, 3),
        padding_fraction=round(1 - st["real_tokens"] / st["padded_tokens"], 3),
        rows=st["rows"])
    print(f"{backend}: {result[backend]}", flush=True)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
