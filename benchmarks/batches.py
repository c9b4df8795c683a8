"""Rows per second that the batch pipeline produces at T=128 on one core.

  python benchmarks/batches.py [--data PATH] [--steps 200] [--masking ranked [--anti_repeat]]

Builds (or reuses) a token store, then times `BatchSource.batch` over consecutive steps in
one thread (numpy limited to one thread). The last line is one JSON object; `ratio` =
rows_per_s / 20,000 (the target), and `copy_rows_per_s` is a plain numpy gather of the same
number of tokens from the store, measured in the same run, for scale. With `--anti_repeat`
it also times the replay of epoch 0's masks (`mask_history(1)`, what a run does once per
epoch and a resumed run once per earlier epoch): `replay_s_per_epoch` and
`replay_rows_per_s`; the timed steps then include the replays of the epochs they enter.
Times are CPU seconds of this process (`cpu_*`) and wall seconds.
"""

import argparse
import json
import os
import sys
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ[var] = "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from babylm_jax import config as config_lib  # noqa: E402
from babylm_jax.config import base_config  # noqa: E402
from babylm_jax.data.batches import BatchSource  # noqa: E402
from babylm_jax.data.prepare import prepare_data  # noqa: E402

TARGET = 20_000


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", default="../shared/data/babylm_text/train_100k")
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--cache", default="")
  ap.add_argument("--masking", default="bernoulli")
  ap.add_argument("--anti_repeat", action="store_true")
  args = ap.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    c = base_config()
    c.data.path = args.data
    c.data.cache_dir = args.cache or os.path.join(tmp, "cache")
    c.model.vocab_size = 8192
    c.train.seq_lens = (128,)
    c.train.seq_len_fractions = (1.0,)
    c.train.steps = 10_000
    c.objective.masking, c.objective.anti_repeat = args.masking, args.anti_repeat
    p = prepare_data(c)
    d = config_lib.derive(c)
    replay = {}
    if args.anti_repeat:
      fresh = BatchSource(p.train, c, d)
      t, cpu = time.time(), time.process_time()
      fresh.mask_history(1)
      cpu_s = time.process_time() - cpu
      replay = dict(replay_s_per_epoch=round(time.time() - t, 2),
                    cpu_replay_s_per_epoch=round(cpu_s, 2),
                    cpu_replay_rows_per_s=round(fresh.stream_len / 128 / cpu_s))
    src = BatchSource(p.train, c, d)
    rows = d.phases[0].batch_rows
    src.batch(0)
    t, cpu = time.time(), time.process_time()
    for s in range(1, args.steps + 1):
      src.batch(s)  # with --anti_repeat, a step entering a new epoch replays the one before
    dt, cpu_dt = time.time() - t, time.process_time() - cpu
    rng = np.random.default_rng(0)
    t = time.time()
    for _ in range(args.steps):
      i = rng.integers(0, p.train.num_tokens - rows * 129)
      np.asarray(p.train.tokens[i:i + rows * 129], np.int32).reshape(rows, 129)
    copy_dt = time.time() - t
  rows_per_s = rows * args.steps / dt
  print(json.dumps(dict(seq_len=128, masking=args.masking, anti_repeat=args.anti_repeat,
                        rows_per_step=rows, steps=args.steps, rows_per_s=round(rows_per_s),
                        cpu_rows_per_s=round(rows * args.steps / cpu_dt),
                        copy_rows_per_s=round(rows * args.steps / copy_dt), **replay,
                        target=TARGET, ratio=round(rows_per_s / TARGET, 3))))


if __name__ == "__main__":
  main()
