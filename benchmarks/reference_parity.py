"""Our model against the reference repository's own PyTorch model, logit for logit.

  python benchmarks/reference_parity.py --config configs/ltg_bert_small.py \
      --ref /path/to/ltgoslo+ltg-bert/babylm/train
  python benchmarks/reference_parity.py --config configs/elc_bert_small.py \
      --ref /path/to/ltgoslo+elc-bert/models
  python benchmarks/reference_parity.py --config configs/gpt_bert_reference_small.py \
      --ref /path/to/ltgoslo+gpt-bert/pretraining
  python benchmarks/reference_parity.py --config configs/boot_bert_small.py \
      --ref /path/to/ltgoslo+boot-bert

BootBERT (`boot_bert_small`, system 'boot_bert') is compared by reference_parity_bootbert.py,
which this script hands the run to (with --ref, --config, --rows and --noise): beyond the
logits it compares the encoder's states, the decoder's logits at the holes, the latent target
and guesses and the batch's losses, and its --ref is the checkout itself (it reads
pretrain/model.py and pretrain/train.py).

Builds our model from the config, initialises it and trains it for --steps steps of our
training step (babylm_jax.train.step, the config's optimizer at its peak rate) on packed real
BabyLM text, then adds N(0, --noise) to every parameter (10 x that to the layer weights) so
that biases, affine LayerNorms and layer weights all matter. The weights go into the reference
repository's model class, imported at run time from --ref (nothing of it is kept here), and
both score the same packed rows: several documents a row, each attending to its own document
only. The references' top-level forward takes a padding mask only, so their modules are called
directly with the block-diagonal mask (and, for GPT-BERT, the causal one too). float32
throughout; the figure is the max |logit difference| over every position, against --tol.

SYSTEMS maps a system to its compare function: (reference dir, config.model, our params as
numpy, input ids [B, T], one [B, T, T] allowed-mask per mode) -> {mode: the reference's logits
[B, T, V]}. CONFIG_SYSTEMS picks the system of a named config (--system overrides it).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from babylm_jax.config import BOS_ID  # noqa: E402
from babylm_jax.data.batches import ROW_RULES, Rows  # noqa: E402
from babylm_jax.data.masking import make_masker  # noqa: E402
from babylm_jax.data.tokenizer import encode_documents, train_tokenizer  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402
from babylm_jax.train import sharding  # noqa: E402
from flax import nnx  # noqa: E402
from train_step import fixed_shape_step, load_config  # noqa: E402

TEXT = ROOT.parent / "shared" / "data" / "babylm_text" / "train_100k"


# ----------------------------------------------------------------------------- references


def _import(path: pathlib.Path, name: str):
  """A reference module, loaded from its file under a name of ours (their files share names)."""
  if not path.is_file():
    raise SystemExit(f"error: {path} does not exist; point --ref at the reference's folder "
                     f"that holds it.")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _ref_config(m):
  """The fields the references' BertConfig reads from their configs/*.json."""
  return types.SimpleNamespace(
      vocab_size=m.vocab_size, hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
      num_attention_heads=m.num_heads, intermediate_size=m.intermediate_size,
      position_bucket_size=m.position_bucket_size, max_position_embeddings=m.max_position,
      layer_norm_eps=m.layer_norm_eps, hidden_dropout_prob=m.dropout,
      attention_probs_dropout_prob=m.dropout)


def _load(torch_model, tensors: dict):
  """Sets every parameter of `torch_model` from `tensors` (name -> numpy), each exactly once."""
  import torch
  params = dict(torch_model.named_parameters())
  missing = set(params) - set(tensors)
  extra = set(tensors) - set(params)
  if missing or extra:
    raise SystemExit(f"error: weight names do not match the reference: missing "
                     f"{sorted(missing)[:4]}, unknown {sorted(extra)[:4]}.")
  with torch.no_grad():
    for name, p in params.items():
      value = torch.from_numpy(np.ascontiguousarray(tensors[name], np.float32))
      if tuple(value.shape) != tuple(p.shape):
        raise SystemExit(f"error: {name} is {tuple(value.shape)} here and {tuple(p.shape)} in "
                         f"the reference.")
      p.copy_(value)
  return torch_model.eval()


def _common(params, attention_of, mlp_of, layers: int) -> dict:
  """The names the LTG group's references share: embedding, FFN, head; attention's q|k and
  output projections."""
  t = {"embedding.word_embedding.weight": params["embedding"]["word"],
       "embedding.relative_embedding": params["embedding"]["relative"],
       "embedding.relative_layer_norm.weight": params["embedding"]["relative_norm_scale"],
       "embedding.relative_layer_norm.bias": params["embedding"]["relative_norm_bias"],
       "classifier.nonlinearity.1.weight": params["head_module"]["dense"]["kernel"].T,
       "classifier.nonlinearity.1.bias": params["head_module"]["dense"]["bias"],
       "classifier.nonlinearity.5.bias": params["head_module"]["bias"]}
  for i in range(layers):
    a, f = params["attention"][i], params["ffn"][i]
    t[f"{attention_of(i)}.in_proj_qk.weight"] = a["qk"]["kernel"].T
    t[f"{attention_of(i)}.in_proj_qk.bias"] = a["qk"]["bias"]
    t[f"{attention_of(i)}.out_proj.weight"] = a["out"]["kernel"].T
    t[f"{attention_of(i)}.out_proj.bias"] = a["out"]["bias"]
    t[f"{mlp_of(i)}.mlp.1.weight"] = f["up"]["kernel"].T
    t[f"{mlp_of(i)}.mlp.4.weight"] = f["down"]["kernel"].T
  return t


def _ltg_attention(t, params, attention_of, layers):
  """LTG-BERT's attention: a value projection of its own and an affine LayerNorm after out."""
  for i in range(layers):
    a = params["attention"][i]
    t[f"{attention_of(i)}.in_proj_v.weight"] = a["v"]["kernel"].T
    t[f"{attention_of(i)}.in_proj_v.bias"] = a["v"]["bias"]
    t[f"{attention_of(i)}.post_layer_norm.weight"] = a["post_norm_scale"]
    t[f"{attention_of(i)}.post_layer_norm.bias"] = a["post_norm_bias"]
  return t


def _run(bert, input_ids_BT, allowed, encode):
  """The reference's logits [B, T, V] per mode; its modules run sequence-first ([T, B])."""
  import torch
  out = {}
  with torch.no_grad():
    ids_TB = torch.from_numpy(input_ids_BT.T.astype(np.int64)).contiguous()
    static_TBD, rel_RD = bert.embedding(ids_TB)
    for mode, allowed_BTT in allowed.items():
      masked_B1TT = ~torch.from_numpy(allowed_BTT)[:, None]  # True = may not attend
      hidden_TBD = encode(bert.transformer, static_TBD, masked_B1TT, rel_RD)
      out[mode] = bert.classifier.nonlinearity(hidden_TBD).transpose(0, 1).numpy()
  return out


def _ltg_tensors(params, L: int) -> dict:
  """Our weights under the LTG group's names (LTG-BERT and ELC-BERT share its layer layout)."""
  attention_of = lambda i: f"transformer.layers.{i}.attention"  # noqa: E731
  mlp_of = lambda i: f"transformer.layers.{i}.mlp"  # noqa: E731
  return _ltg_attention(_common(params, attention_of, mlp_of, L), params, attention_of, L)


def compare_ltg_bert(ref, m, params, input_ids_BT, allowed):
  module = _import(pathlib.Path(ref) / "model.py", "_ref_ltg_bert_model")
  bert = _load(module.Bert(_ref_config(m)), _ltg_tensors(params, m.num_layers))
  return _run(bert, input_ids_BT, allowed, lambda enc, x, mask, rel: enc(x, mask, rel))


def compare_elc_bert(ref, m, params, input_ids_BT, allowed):
  module = _import(pathlib.Path(ref) / "model_elc_bert_base.py", "_ref_elc_bert_model")
  L = m.num_layers
  t = _ltg_tensors(params, L)
  for i in range(L):  # layer i's weights over the embedding and layers 0..i-1
    t[f"transformer.layers.{i}.prev_layer_weights"] = params["layer_weight"][i, :i + 1]
  bert = _load(module.Bert(_ref_config(m)), t)
  # Bert.forward reads the last of the encoder's list of states.
  return _run(bert, input_ids_BT, allowed, lambda enc, x, mask, rel: enc(x, mask, rel)[-1])


def compare_gpt_bert(ref, m, params, input_ids_BT, allowed):
  module = _import(pathlib.Path(ref) / "model_extra.py", "_ref_gpt_bert_model")
  L = m.num_layers
  attention_of = lambda i: f"transformer.attention_layers.{i}"  # noqa: E731
  mlp_of = lambda i: f"transformer.mlp_layers.{i}"  # noqa: E731
  t = _common(params, attention_of, mlp_of, L)
  for i in range(L):
    a = params["attention"][i]
    t[f"{attention_of(i)}.in_proj_vg.weight"] = a["vg"]["kernel"].T
    t[f"{attention_of(i)}.in_proj_vg.bias"] = a["vg"]["bias"]
  for i in range(2 * L):  # sublayer i's weights over the embedding and sublayers 0..i
    t[f"transformer.dwa_modules.alphas.{i}"] = params["layer_weight"][i, :i + 2]
  bert = _load(module.Bert(_ref_config(m)), t)
  return _run(bert, input_ids_BT, allowed, lambda enc, x, mask, rel: enc(x, mask, rel))


SYSTEMS = {"ltg_bert": compare_ltg_bert, "elc_bert": compare_elc_bert,
           "gpt_bert": compare_gpt_bert}
CONFIG_SYSTEMS = {"ltg_bert_small": "ltg_bert", "elc_bert_small": "elc_bert",
                  "gpt_bert_reference_small": "gpt_bert", "gpt_bert_reference_base": "gpt_bert",
                  "strict_small": "gpt_bert", "boot_bert_small": "boot_bert"}
# The modes each system's logits are compared in: bidirectional ('masked'), causal.
MODES = {"gpt_bert": ("masked", "causal")}


# ----------------------------------------------------------------------------- our side


def real_rows(docs_tokens, B, T, rng):
  """[B, T + 1] tokens of packed documents (each opened by <s>, the last one cut) and their
  starts; every row holds at least two documents."""
  tokens = np.zeros((B, T + 1), np.int32)
  starts = np.zeros((B, T + 1), bool)
  for b in range(B):
    pos = 0
    while pos < T + 1:
      doc = docs_tokens[rng.integers(len(docs_tokens))]
      doc = doc[:max(8, (T + 1) // 3)]  # short enough that a row holds several
      piece = np.concatenate([[BOS_ID], doc])[:T + 1 - pos]
      tokens[b, pos:pos + len(piece)] = piece
      starts[b, pos] = True
      pos += len(piece)
  return tokens, starts


def make_batches(c, docs_tokens, B, T, n):
  """n batches of the config's objective from packed real text."""
  masker = make_masker(c.objective, c.model.vocab_size)
  out = []
  for seed in range(n):
    rng = np.random.default_rng(seed)
    tokens, starts = real_rows(docs_tokens, B, T, rng)
    is_causal = np.zeros(B, bool)
    if c.objective.kind in ("hybrid", "causal"):
      is_causal[:max(1, round(B * c.objective.causal_fraction))] = True
    m = masker(rng.random((B, masker.uniforms_per_row(T + 1))), tokens,
               ~starts & ~is_causal[:, None], starts, c.objective.mask_rate_start)
    out.append(ROW_RULES[c.objective.kind](Rows(tokens=tokens, starts=starts,
                                                is_causal=is_causal, masked=m)))
  return out


def allowed_masks(segment_ids_BT, modes):
  """[B, T, T] bool per mode: same document (and key <= query when causal)."""
  T = segment_ids_BT.shape[1]
  same = segment_ids_BT[:, :, None] == segment_ids_BT[:, None, :]
  lower = np.tril(np.ones((T, T), bool))
  return {mode: same & lower if mode == "causal" else same for mode in modes}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", required=True, help="a config file, e.g. configs/ltg_bert_small.py")
  p.add_argument("--ref", required=True, help="the reference's folder holding its model file")
  p.add_argument("--system", default="", help=f"one of {', '.join(SYSTEMS)}, boot_bert "
                                              f"(default: from the config's name)")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--rows", type=int, default=4)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--noise", type=float, default=0.05)
  p.add_argument("--tol", type=float, default=1e-4)
  p.add_argument("--text", default=str(TEXT), help="a folder of BabyLM *.train files")
  args = p.parse_args()
  config_path = pathlib.Path(args.config)
  if not config_path.is_file():
    raise SystemExit(f"error: --config {config_path} is not a file.")
  system = args.system or CONFIG_SYSTEMS.get(config_path.stem, "")
  if system == "boot_bert":
    import reference_parity_bootbert
    sys.argv = [sys.argv[0], "--ref", args.ref, "--config", args.config, "--rows",
                str(args.rows), "--noise", str(args.noise)]
    sys.exit(reference_parity_bootbert.main())
  if system not in SYSTEMS:
    raise SystemExit(f"error: no reference system for {config_path.stem!r}; pass --system "
                     f"as one of {', '.join(SYSTEMS)}, boot_bert.")
  files = sorted(pathlib.Path(args.text).glob("*.train"))
  if not files:
    raise SystemExit(f"error: --text {args.text} holds no *.train files.")
  jax.config.update("jax_default_matmul_precision", "highest")

  c = load_config(config_path)
  c.model.compute_dtype = "float32"
  t0 = time.perf_counter()
  docs = [line for f in files for line in f.read_text().splitlines()[:1500] if line.strip()]
  tok = train_tokenizer(docs, c.model.vocab_size)
  tokens, lengths = encode_documents(tok, docs)
  docs_tokens = [d for d in np.split(tokens.astype(np.int32), np.cumsum(lengths)[:-1])
                 if len(d) >= 4]
  B, T = args.rows, args.seq_len
  batches = make_batches(c, docs_tokens, B, T, args.steps + 1)

  # A few real steps of our training step, at the peak rate from the first one.
  c.train.warmup_fraction, c.train.batch_ramp_start = 0.0, 1.0
  step, state, _, mesh = fixed_shape_step(c, B, T, n_batches=1,
                                          batch_fn=lambda c, i, B, T: batches[i])
  losses = []
  for i in range(args.steps):
    state, metrics = step(state, sharding.global_batch(batches[i], mesh))
    losses.append(float(jax.device_get(metrics["loss"])))
  rng = np.random.default_rng(1)

  def noisy(path, x):
    scale = 10 * args.noise if "layer_weight" in jax.tree_util.keystr(path) else args.noise
    return np.asarray(x, np.float32) + rng.normal(0.0, scale, x.shape).astype(np.float32)

  params = jax.tree_util.tree_map_with_path(noisy, jax.device_get(state.params))

  model = GPTBert(c.model, rngs=nnx.Rngs(0))
  nnx.update(model, jax.tree.map(jnp.asarray, params))
  batch = batches[-1]  # not trained on
  modes = MODES.get(system, ("masked",))
  allowed = allowed_masks(batch["segment_ids"], modes)
  theirs = SYSTEMS[system](args.ref, c.model, params, batch["input_ids"], allowed)
  worst, scale = {}, 0.0
  for mode in modes:
    is_causal = jnp.full((B,), mode == "causal")
    ours = np.asarray(model(jnp.asarray(batch["input_ids"]), jnp.asarray(batch["segment_ids"]),
                            is_causal))
    worst[mode] = float(np.abs(ours - theirs[mode]).max())
    scale = max(scale, float(np.abs(ours).max()))
  max_diff = max(worst.values())
  docs_per_row = float(np.mean(batch["segment_ids"].max(axis=1)))
  print(json.dumps(dict(
      system=system, config=str(config_path), ref=str(args.ref), steps=args.steps,
      train_losses=[round(x, 4) for x in losses], noise=args.noise, rows=B, seq_len=T,
      docs_per_row=docs_per_row, max_abs_logit=round(scale, 3),
      max_abs_diff_by_mode=worst, max_abs_diff=max_diff, tol=args.tol,
      ok=bool(max_diff <= args.tol), seconds=round(time.perf_counter() - t0, 1))))
  sys.exit(0 if max_diff <= args.tol else 1)


if __name__ == "__main__":
  main()
