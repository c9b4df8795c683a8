"""The exported PyTorch model at strict_small size: agreement with JAX and relative speed.

  python benchmarks/export_hf.py [--rows 16] [--length 128] [--noise 0.02]

Builds the strict_small GPT-BERT (12 layers, hidden 384, vocab 8,192) with its init plus
noise, writes a full export folder (weights, code, a tokenizer trained on the shared text),
loads it back with transformers' AutoModelForCausalLM / AutoModelForMaskedLM
(trust_remote_code=True) and with `load_from_hf`, and runs a padded batch of real text through
both frameworks. The tests check parity on the tiny smoke model; this checks it at the size
that gets submitted. The last line is one JSON object: the largest logit difference per mode,
whether the round trip was bit-identical, and `torch_over_jax_time`, the PyTorch forward
time over the (jitted) JAX forward time on the same batch, measured in the same run.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from babylm_jax.config import BOS_ID, PAD_ID  # noqa: E402
from babylm_jax.data.tokenizer import save_tokenizer_atomic, train_tokenizer  # noqa: E402
from babylm_jax.export import hf  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402
from configs.strict_small import get_config  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def _time(fn, repeats=3):
  fn()  # warm-up (compilation)
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t)
  return best


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--rows", type=int, default=16)
  ap.add_argument("--length", type=int, default=128)
  ap.add_argument("--noise", type=float, default=0.02)
  args = ap.parse_args()
  from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

  config = get_config()
  text = (DATA / "babylm_text" / "train_100k" / "simple_wiki.train").read_text()
  words = text.split()
  docs = [" ".join(words[i:i + 200]) for i in range(0, len(words), 200)]
  tok = train_tokenizer(docs, config.model.vocab_size)

  model = GPTBert(config.model, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda x: x + jnp.asarray(rng.normal(0.0, args.noise, x.shape), jnp.float32),
      nnx.to_pure_dict(nnx.state(model)))
  nnx.update(model, params)

  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    save_tokenizer_atomic(tok, str(tmp / "tokenizer.json"))
    out = tmp / "export"
    out.mkdir()
    t = time.perf_counter()
    hf.write_folder(out, params, config.model, tmp / "tokenizer.json", {"step": 0})
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    back = hf.load_from_hf(out, config)
    import_s = time.perf_counter() - t
    identical = all(np.array_equal(np.asarray(a), np.asarray(b))
                    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)))

    hf_tok = AutoTokenizer.from_pretrained(str(out), trust_remote_code=True)
    starts = rng.integers(0, len(words) - 200, args.rows)
    texts = [" ".join(words[s:s + rng.integers(20, 120)]) for s in starts]
    enc = hf_tok(texts, padding="max_length", truncation=True, max_length=args.length,
                 return_tensors="pt")
    assert (enc["input_ids"][:, 0] == BOS_ID).all() and (enc["input_ids"] == PAD_ID).any()
    ids, mask = enc["input_ids"].numpy(), enc["attention_mask"].numpy()
    real = mask > 0

    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, i, m, c: nnx.merge(graphdef, s)(i, m, c))
    result = dict(rows=args.rows, length=args.length, export_s=round(export_s, 3),
                  import_s=round(import_s, 3), round_trip_bit_identical=identical)
    ratios = []
    for name, cls, causal in (("causal", AutoModelForCausalLM, True),
                              ("masked", AutoModelForMaskedLM, False)):
      m = cls.from_pretrained(str(out), trust_remote_code=True, local_files_only=True)
      causal_B = jnp.full((args.rows,), causal)
      jax_logits = np.asarray(forward(state, jnp.asarray(ids), jnp.asarray(mask), causal_B))
      with torch.no_grad():
        torch_logits = m(**enc).logits.numpy()
      result[f"max_abs_diff_{name}"] = float(np.abs(jax_logits - torch_logits)[real].max())
      jax_s = _time(lambda: forward(state, jnp.asarray(ids), jnp.asarray(mask),
                                    causal_B).block_until_ready())
      with torch.no_grad():
        torch_s = _time(lambda: m(**enc))
      result[f"jax_{name}_s"] = round(jax_s, 4)
      result[f"torch_{name}_s"] = round(torch_s, 4)
      ratios.append(torch_s / jax_s)
    result["torch_over_jax_time"] = round(float(np.mean(ratios)), 3)
    result["within_1e-4"] = max(result["max_abs_diff_causal"],
                                result["max_abs_diff_masked"]) < 1e-4
  print(json.dumps(result))


if __name__ == "__main__":
  main()
