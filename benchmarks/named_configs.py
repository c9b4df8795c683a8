"""Does each named config learn? A 300-step smoke run of every seed system's recipe.

  python benchmarks/named_configs.py --workdir DIR [--configs strict_small,gpt_small,...]
      [--steps 300]

Each config in configs/ (its objective, architecture switches, optimizer, learning rate and
masking) is trained by launch.py at the smoke config's size (2 layers x 64, vocabulary 1024,
2,048 tokens a step at length 128) on ../shared/data/babylm_text/train_100k, in its own
workdir. Reported per config: the parameters at that size, the mean training loss of the
first and the last 20 steps, the final validation loss, and the margin of the last training
loss below the loss of a uniform prediction over the vocabulary (ln 1024 = 6.93 nats). The
loss is each objective's own: for `bootstrap` it is 0.1 x the masked-token cross-entropy plus
the latent loss, so its margin is not comparable with the others'. The last line printed is
one JSON object; the target is a positive margin for every config.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIGS = ("strict_small", "ltg_bert_small", "elc_bert_small", "roberta_small", "gpt_small",
           "boot_bert_small", "gpt_bert_reference_small")
VOCAB = 1024


def smoke_flags(steps: int) -> list[str]:
  """The smoke config's size and data, on top of any named config."""
  data = ROOT.parent / "shared" / "data" / "babylm_text" / "train_100k"
  return [f"--config.data.path={data}", f"--config.model.vocab_size={VOCAB}",
          "--config.model.hidden_size=64", "--config.model.num_layers=2",
          "--config.model.num_heads=2", "--config.model.intermediate_size=128",
          "--config.model.max_position=512", "--config.train.tokens_per_step=2048",
          "--config.train.seq_lens=(128,)", "--config.train.seq_len_fractions=(1.0,)",
          "--config.train.batch_ramp_start=1.0", f"--config.train.steps={steps}",
          "--config.train.log_every=10", f"--config.train.eval_every={steps}",
          "--config.train.eval_batches=4", f"--config.checkpoint.every={steps}",
          "--config.checkpoint.milestones=False"]


def _parameters(model_fields: dict) -> int:
  """The run's parameter count (its encoder, and BootBERT's decoder and latent head)."""
  import ml_collections
  from babylm_jax.model.gpt_bert import count_params
  return count_params(ml_collections.ConfigDict(model_fields))


def run(name: str, workdir: pathlib.Path, steps: int, extra: list[str]) -> dict:
  out = workdir / name
  cmd = [sys.executable, str(ROOT / "launch.py"), "--config", str(ROOT / "configs" / f"{name}.py"),
         "--workdir", str(out), *smoke_flags(steps), *extra]
  if name == "boot_bert_small":
    cmd.append("--config.model.decoder_layers=1")
  print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
  if subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
    sys.exit(f"error: {name} did not train; its output is above.")
  records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l]
  train = [r for r in records if "loss" in r]
  val = [r for r in records if r.get("val_loss") is not None]
  resolved = json.loads((out / "config.json").read_text())
  first = statistics.mean(r["loss"] for r in train[:2])
  last = statistics.mean(r["loss"] for r in train[-2:])
  return dict(objective=resolved["objective"]["kind"],
              parameters=_parameters(resolved["model"]), first_loss=round(first, 3),
              last_loss=round(last, 3), final_val_loss=round(val[-1]["val_loss"], 3),
              margin_below_uniform=round(math.log(VOCAB) - last, 3),
              curve=[[r["step"], round(r["loss"], 3)] for r in train])


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--configs", default=",".join(CONFIGS))
  ap.add_argument("--steps", type=int, default=300)
  args, extra = ap.parse_known_args()
  work = pathlib.Path(args.workdir)
  if work.exists() and any(work.iterdir()):
    sys.exit(f"error: '{work}' is not empty; give a fresh --workdir.")
  results = {name: run(name, work, args.steps, extra) for name in args.configs.split(",")}
  for name, r in results.items():
    print(f"{name:26s} {r['objective']:9s} loss {r['first_loss']:.3f} -> {r['last_loss']:.3f} "
          f"(val {r['final_val_loss']:.3f}), {r['margin_below_uniform']:+.3f} below uniform",
          flush=True)
  print(json.dumps(dict(steps=args.steps, uniform_loss=round(math.log(VOCAB), 3),
                        all_learn=all(r["margin_below_uniform"] > 0 for r in results.values()),
                        configs=results)))


if __name__ == "__main__":
  main()
