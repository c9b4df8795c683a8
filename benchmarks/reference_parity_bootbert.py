"""BootBERT against its reference code: our weights in ltgoslo/boot-bert's own PyTorch model.

  python benchmarks/reference_parity_bootbert.py --ref /work/refs/ltgoslo+boot-bert \
      [--config configs/boot_bert_small.py] [--rows 4] [--noise 0.05] [--seed 0]

Builds our BootBERT (`--config`, by default configs/boot_bert_small.py) with its init plus
Gaussian noise on every parameter (so that every bias, LayerNorm gain and the mask embedding
matter), and a teacher that differs from the encoder by noise of its own; copies both into the
reference's `Bert` class, imported at run time from `--ref`/pretrain/model.py (nothing of it
is copied here), and runs one batch of real text through both in float32, dropout off.

The batch is ours: packed rows of BabyLM text (`--data`, the shared train_100k by default)
tokenised and masked by our pipeline (objective 'bootstrap': every chosen token a hole). The
reference reads one document per row, so each document of a packed row becomes its own padded
reference row: its visible tokens as the encoder's input with their original positions, the
holes as labels. That the two agree also checks that packing changes nothing.

Compared (max abs difference): the encoder's states at every visible token, the teacher's
LayerNorm-ed states at the holes (the latent target), the decoder's logits and the latent
head's guesses at the holes, and the losses of the batch (masked cross-entropy, the smooth-L1
latent loss, and 0.1 x the one + the other as train.py sums them); and which trainable
parameters the two optimizers would group differently (decay and trust ratio or not; none
expected). `compare` is the function a table of reference comparisons calls; the last line
printed is one JSON object, and the exit code is 1 when a difference exceeds 1e-4 or a
parameter is grouped differently.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from babylm_jax.config import derive  # noqa: E402
from babylm_jax.config_files import load as load_config  # noqa: E402
from babylm_jax.data.batches import BatchSource  # noqa: E402
from babylm_jax.data.prepare import prepare_data  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402
from babylm_jax.model.layers import layer_norm  # noqa: E402
from babylm_jax.train.objectives import bootstrap  # noqa: E402
# The references' shared loading: their model file under a name of ours, their config object.
from reference_parity import _import, _ref_config  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "babylm_text" / "train_100k"
TOL = 1e-4


def reference_module(ref_dir):
  """The reference's pretrain/model.py, imported from `ref_dir` under a name of its own."""
  if not (pathlib.Path(ref_dir) / "pretrain" / "model.py").is_file():
    raise SystemExit(f"error: --ref '{ref_dir}' holds no pretrain/model.py; point it at a "
                     f"checkout of ltgoslo/boot-bert.")
  return _import(pathlib.Path(ref_dir) / "pretrain" / "model.py", "boot_bert_reference_model")


# ------------------------------------------------------------------ weights, ours -> theirs


def _linear(dense):
  """(weight [out, in], bias) of one of our Dense params dicts."""
  out = {"weight": np.asarray(dense["kernel"]).T}
  if dense.get("bias") is not None:
    out["bias"] = np.asarray(dense["bias"])
  return out


def _norm(norm):
  return {"weight": np.asarray(norm["scale"]), "bias": np.asarray(norm["bias"])}


def _attention(a):
  """One LTG-BERT attention block's tensors (model.attention 'ltg')."""
  t = {}
  for ours, theirs in (("qk", "in_proj_qk"), ("v", "in_proj_v"), ("out", "out_proj")):
    for k, v in _linear(a[ours]).items():
      t[f"{theirs}.{k}"] = v
  t["post_layer_norm.weight"] = np.asarray(a["post_norm_scale"])
  t["post_layer_norm.bias"] = np.asarray(a["post_norm_bias"])
  return t


def _stack(tensors, prefix, params):
  """Reference names of an Encoder (its layers and final norm) from our attention, ffn and
  final_norm params."""
  for i in range(len(params["attention"])):
    for name, value in _attention(params["attention"][i]).items():
      tensors[f"{prefix}.layers.{i}.attention.{name}"] = value
    ffn = params["ffn"][i]
    tensors[f"{prefix}.layers.{i}.mlp.mlp.1.weight"] = np.asarray(ffn["up"]["kernel"]).T
    tensors[f"{prefix}.layers.{i}.mlp.mlp.4.weight"] = np.asarray(ffn["down"]["kernel"]).T
  for k, v in _norm(params["final_norm"]).items():
    tensors[f"{prefix}.norm.{k}"] = v


def _embedding(tensors, prefix, emb, mask):
  tensors[f"{prefix}.word_embedding.weight"] = np.asarray(emb["word"])
  tensors[f"{prefix}.relative_embedding"] = np.asarray(emb["relative"])
  tensors[f"{prefix}.relative_layer_norm.weight"] = np.asarray(emb["relative_norm_scale"])
  tensors[f"{prefix}.relative_layer_norm.bias"] = np.asarray(emb["relative_norm_bias"])
  tensors[f"{prefix}.mask_embedding"] = np.asarray(mask)


def reference_state(params, teacher) -> dict:
  """The reference Bert's state dict (parameters; its buffers are its own) of our params and
  teacher."""
  t = {}
  mask = params["decoder"]["mask"]
  _embedding(t, "embedding", params["embedding"], mask)
  _stack(t, "transformer", params)
  _stack(t, "decoder", params["decoder"])
  # The teacher's mask embedding is never read; it gets the student's.
  _embedding(t, "teacher_embedding", teacher["embedding"], mask)
  _stack(t, "teacher", teacher)
  head = params["head_module"]
  for k, v in _linear(head["dense"]).items():
    t[f"classifier.nonlinearity.0.{k}"] = v
  t["classifier.nonlinearity.4.weight"] = t["embedding.word_embedding.weight"]  # tied
  t["classifier.nonlinearity.4.bias"] = np.asarray(head["bias"])
  latent = params["decoder"]["latent_head"]
  for i, part in ((0, "dense"), (3, "out")):
    for k, v in _linear(latent[part]).items():
      t[f"byol_classifier.nonlinearity.{i}.{k}"] = v
  return t


def load_reference(ref_dir, config, params, teacher):
  """The reference's Bert in eval mode holding our weights; every parameter of it set."""
  import torch
  module = reference_module(ref_dir)
  torch.manual_seed(0)
  ref = module.Bert(_ref_config(config.model)).eval()
  state = ref.state_dict()
  ours = reference_state(params, teacher)
  buffers = {name for name, _ in ref.named_buffers()}
  missing = sorted(set(state) - set(ours) - buffers)
  extra = sorted(set(ours) - set(state))
  if missing or extra:
    raise SystemExit(f"error: the reference's parameters and ours do not pair up (theirs "
                     f"unset: {missing[:5]}, ours unknown to it: {extra[:5]}).")
  for name, value in ours.items():
    if tuple(state[name].shape) != value.shape:
      raise SystemExit(f"error: '{name}' is {tuple(state[name].shape)} in the reference and "
                       f"{value.shape} here.")
    state[name] = torch.from_numpy(np.array(value, np.float32))
  ref.load_state_dict(state, strict=True)
  return ref


# ------------------------------------------------------------------ the batch, ours -> theirs


def reference_rows(batch):
  """Each document of our packed rows as one padded reference row (sequence first, as the
  reference's Collate makes them), and where each of its tokens sits in our batch."""
  import torch
  docs = []  # (row, positions) per document
  for b, seg_T in enumerate(batch["segment_ids"]):
    for s in np.unique(seg_T[seg_T > 0]):
      docs.append((b, np.nonzero(seg_T == s)[0]))
  N = len(docs)
  T = max(len(p) for _, p in docs)
  holes = [batch["loss_mask"][b, p] for b, p in docs]
  Te = max(int((~h).sum()) for h in holes)
  full = np.zeros((T, N), np.int64)
  labels = np.full((T, N), -100, np.int64)
  enc = np.zeros((Te, N), np.int64)
  unmasked = np.zeros((Te, N), np.int64)
  enc_pad = np.ones((N, Te), bool)
  full_pad = np.ones((N, T), bool)
  for n, ((b, p), h) in enumerate(zip(docs, holes)):
    tokens = batch["targets"][b, p]
    full[:len(p), n], full_pad[n, :len(p)] = tokens, False
    labels[:len(p), n][h] = tokens[h]
    vis = np.nonzero(~h)[0]
    enc[:len(vis), n], unmasked[:len(vis), n], enc_pad[n, :len(vis)] = tokens[vis], vis, False
  as_t = torch.from_numpy
  inputs = dict(encoder_inputs=as_t(enc), full_inputs=as_t(full), outputs=as_t(labels),
                unmasked_ids=as_t(unmasked), encoder_attention_mask=as_t(enc_pad),
                context_attention_mask=as_t(full_pad))
  return inputs, docs


def _hole_order(labels_TN, docs):
  """(row, position) in our batch of each reference hole, in the reference's order (it
  flattens [T, N] sequence first)."""
  t, n = np.nonzero(labels_TN != -100)
  return np.array([docs[j][0] for j in n]), np.array([docs[j][1][i] for i, j in zip(t, n)])


def optimizer_groups(ref_dir, config, params, ref) -> list[str]:
  """The reference's trainable parameters (`ref.named_parameters()`, where the tied classifier
  weight is the word embedding) that its optimizer groups otherwise than ours: it exempts
  from decay and trust ratio the names holding a fragment of `no_decay` in its
  pretrain/train.py (read from there); we, the paths holding one of train.no_decay."""
  import re
  from babylm_jax.train.optimizer import lamb_trust_mask
  text = (pathlib.Path(ref_dir) / "pretrain" / "train.py").read_text()
  found = re.search(r"no_decay\s*=\s*\[([^\]]*)\]", text)
  if found is None:
    raise SystemExit(f"error: no `no_decay = [...]` in {ref_dir}/pretrain/train.py.")
  theirs = re.findall(r"['\"]([^'\"]+)['\"]", found.group(1))
  decayed = lamb_trust_mask(tuple(config.train.no_decay))(params)
  ours = reference_state(jax.tree.map(lambda p, d: np.full(np.shape(p), d), params, decayed),
                         bootstrap.init_teacher(params))
  trained = [name for name, p in ref.named_parameters() if p.requires_grad]
  return sorted(name for name in trained
                if bool(np.all(ours[name])) != (not any(f in name for f in theirs)))


# ------------------------------------------------------------------ the comparison


def compare(ref_dir: str, config, model, teacher, batch) -> dict:
  """Max abs differences between our BootBERT (`model`, an nnx GPTBert, and `teacher`, the
  encoder's parameter groups) and the reference's Bert holding the same weights, on `batch`
  (our bootstrap batch: input_ids with holes, targets, loss_mask, segment_ids)."""
  import torch
  params = nnx.to_pure_dict(nnx.state(model))
  ref = load_reference(ref_dir, config, params, teacher)
  inputs, docs = reference_rows(batch)
  rows, pos = _hole_order(inputs["outputs"].numpy(), docs)

  # Ours.
  ids, seg = jnp.asarray(batch["input_ids"]), jnp.asarray(batch["segment_ids"])
  bidi = jnp.zeros((ids.shape[0],), bool)
  enc_BTD = np.asarray(model.encode(ids, seg, bidi))
  states_BTD = model.states(ids, seg, bidi)
  h_HD = states_BTD[rows, pos]
  logits_HV = np.asarray(model.head(h_HD))
  guess_HD = np.asarray(model.decoder.latent_head(h_HD))
  graphdef, state = nnx.split(model)
  teacher_model = nnx.merge(graphdef, {**nnx.to_pure_dict(state), **teacher})
  taught_BTD = teacher_model.encode(jnp.asarray(batch["targets"]), seg, bidi)
  goal_HD = np.asarray(layer_norm(taught_BTD[rows, pos], bootstrap.TEACHER_NORM_EPS))
  sums = bootstrap.sums(model, {k: jnp.asarray(v) for k, v in batch.items()}, config, teacher,
                        deterministic=True, rngs=None, divisor=1)
  metrics = {k: float(v) for k, v in bootstrap.metrics(sums, config).items()}

  # Theirs, through its own methods.
  with torch.no_grad():
    static, relative, _ = ref.embedding(inputs["encoder_inputs"])
    enc_ref = ref.transformer(static, inputs["encoder_attention_mask"][:, None, None],
                              relative, inputs["unmasked_ids"]).numpy()  # [Te, N, D]
    contextual = ref.get_contextualized(
        inputs["encoder_inputs"], inputs["outputs"], inputs["unmasked_ids"],
        inputs["encoder_attention_mask"], inputs["context_attention_mask"])
    logits_ref = ref.classifier(contextual).numpy()
    guess_ref = ref.byol_classifier(contextual).numpy()
    goal_ref = ref.get_teacher_embedding(inputs["full_inputs"],
                                         inputs["context_attention_mask"],
                                         inputs["outputs"]).numpy()
    mlm_loss, byol_loss, _ = ref(**inputs)

  visible = ~inputs["encoder_attention_mask"].numpy().T  # [Te, N]
  te, n = np.nonzero(visible)
  enc_rows = np.array([docs[j][0] for j in n])
  enc_pos = np.array([docs[j][1][inputs["unmasked_ids"][i, j]] for i, j in zip(te, n)])
  enc_ours = enc_BTD[enc_rows, enc_pos]
  ref_total = 0.1 * float(mlm_loss) + float(byol_loss)
  differ = optimizer_groups(ref_dir, config, params, ref)
  return {
      "optimizer_groups_differ": len(differ), "optimizer_groups_differ_names": differ[:8],
      "documents": len(docs), "visible_tokens": int(visible.sum()), "holes": int(len(rows)),
      "encoder_states": float(np.abs(enc_ours - enc_ref[te, n]).max()),
      "teacher_targets": float(np.abs(goal_HD - goal_ref).max()),
      "decoder_logits": float(np.abs(logits_HV - logits_ref).max()),
      "latent_guesses": float(np.abs(guess_HD - guess_ref).max()),
      "masked_loss": abs(metrics["masked_loss"] - float(mlm_loss)),
      "latent_loss": abs(metrics["latent_loss"] - float(byol_loss)),
      "loss": abs(metrics["loss"] - ref_total),
      "reference_latent_loss": float(byol_loss), "reference_masked_loss": float(mlm_loss),
      "our_latent_loss": metrics["latent_loss"], "our_masked_loss": metrics["masked_loss"],
  }


def noised(config, noise: float, seed: int):
  """(our model with its init + noise, a teacher = its encoder groups + other noise)."""
  model = GPTBert(config.model, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)

  def shake(tree):
    return jax.tree.map(
        lambda x: x + jnp.asarray(rng.normal(0.0, noise, x.shape), jnp.float32), tree)
  params = shake(nnx.to_pure_dict(nnx.state(model)))
  nnx.update(model, params)
  teacher = shake(bootstrap.init_teacher(params))
  return model, teacher


def real_batch(config, data, rows: int, cache_dir: str):
  """The first `rows` rows of step 0's batch from our pipeline, on real text."""
  c = config.copy_and_resolve_references()
  c.data.path, c.data.cache_dir = str(data), cache_dir
  c.data.allow_over_budget = True
  prepared = prepare_data(c)
  batch = BatchSource(prepared.train, c, derive(c, prepared.train.num_tokens)).batch(0)
  return {k: v[:rows] for k, v in batch.items()}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--ref", required=True, help="a checkout of ltgoslo/boot-bert")
  p.add_argument("--config", default=str(ROOT / "configs" / "boot_bert_small.py"))
  p.add_argument("--data", default=str(DATA))
  p.add_argument("--rows", type=int, default=4)
  p.add_argument("--noise", type=float, default=0.05)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--cache_dir", default="", help="token store cache (default: a temp dir)")
  args = p.parse_args()
  reference_module(args.ref)  # a wrong --ref fails before any work
  config = load_config(args.config)
  if config.objective.kind != "bootstrap":
    raise SystemExit(f"error: {args.config} trains objective '{config.objective.kind}', not "
                     f"BootBERT's 'bootstrap'.")
  jax.config.update("jax_default_matmul_precision", "highest")
  with tempfile.TemporaryDirectory() as tmp:
    batch = real_batch(config, args.data, args.rows, args.cache_dir or tmp)
  model, teacher = noised(config, args.noise, args.seed)
  out = compare(args.ref, config, model, teacher, batch)
  worst = max(v for k, v in out.items() if k in DIFFS)
  for k, v in out.items():
    print(f"{k:>24}: {v:.3g}" if isinstance(v, float) else f"{k:>24}: {v}")
  out.update(config=pathlib.Path(args.config).name, rows=args.rows,
             length=int(batch["input_ids"].shape[1]), noise=args.noise, worst=worst,
             within_tolerance=bool(worst <= TOL), tolerance=TOL)
  print(json.dumps(out))
  ok = worst <= TOL and math.isfinite(worst) and out["optimizer_groups_differ"] == 0
  return 0 if ok else 1


DIFFS = ("encoder_states", "teacher_targets", "decoder_logits", "latent_guesses", "masked_loss",
         "latent_loss", "loss")

if __name__ == "__main__":
  sys.exit(main())
