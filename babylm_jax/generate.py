"""--mode=generate: text sampled from a trained causal or hybrid run, as a corpus folder.

Prompts are the lines of `generate.prompts`, or the openings (first `prompt_tokens` tokens) of
`corpus_prompts` documents spread evenly over the run's own token store; each is opened by
`<s>` as training opens every document. Batches of `batch_size` prompts are left-padded to
one length and decoded together under one jit with the key/value cache (model/cache.py).
Only the continuation is written (the prompt's words are the corpus's, counted there).

The output folder (`generate.out`, default workdir/generated) holds `synthetic.train`, one
sample per blank-line-separated document, and `generation.json` (data/generated.py reads it
to count the words toward the budget). Both are written into a hidden temporary folder that
is renamed into place at the end, so an interrupted generation leaves no folder that looks
complete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from babylm_jax import checkpoint_params, interrupts
from babylm_jax.config import BOS_ID
from babylm_jax.data import clean
from babylm_jax.data import generated as generated_lib
from babylm_jax.errors import ConfigError, DataError, UserError
from babylm_jax.mesh import batch_sharding, make_mesh, replicated
from babylm_jax.model import cache as cache_lib
from babylm_jax.model.axes import activation_sharding

GENERATING_OBJECTIVES = ("causal", "hybrid")


def check_settings(config):
  """Refuses settings generation cannot use, each in one sentence, before anything loads."""
  g, m = config.generate, config.model
  if config.objective.kind not in GENERATING_OBJECTIVES:
    raise ConfigError(f"this run was trained with objective.kind '{config.objective.kind}', "
                      f"which never learnt to predict the next token; generate from a causal "
                      f"or hybrid run.")
  why = cache_lib.check_model(m)
  if why:
    raise ConfigError(why)
  if not g.temperature >= 0:
    raise ConfigError(f"generate.temperature ({g.temperature}) must be 0 (greedy) or more.")
  if not 0 <= g.top_k < m.vocab_size:
    raise ConfigError(f"generate.top_k ({g.top_k}) must be 0 (off) or below the vocabulary "
                      f"size {m.vocab_size}.")
  if not 0 < g.top_p <= 1:
    raise ConfigError(f"generate.top_p ({g.top_p}) must be in (0, 1]; 1 turns it off.")
  for name in ("max_new_tokens", "prompt_tokens", "corpus_prompts", "batch_size"):
    if not (isinstance(g[name], int) and g[name] >= 1):
      raise ConfigError(f"generate.{name} ({g[name]}) must be a positive whole number.")
  if g.step is not None and g.words is not None:
    raise ConfigError("generate.step and generate.words are both set; pass only one of them.")
  if g.prompts and not os.path.isfile(g.prompts):
    raise ConfigError(f"generate.prompts '{g.prompts}' is not a file; give a text file with "
                      f"one prompt a line, or '' to open corpus documents.")


def sampling_of(config) -> cache_lib.Sampling:
  g = config.generate
  return cache_lib.Sampling(float(g.temperature), int(g.top_k), float(g.top_p))


def _prompts(config, tokenizer, prepared) -> tuple[list[np.ndarray], str]:
  """(token arrays, each opened by <s>; where they came from)."""
  g = config.generate
  if g.prompts:
    with open(g.prompts, encoding="utf-8") as f:
      lines = [clean.normalize(line).strip() for line in f]
    lines = [line for line in lines if line]
    if not lines:
      raise DataError(f"generate.prompts '{g.prompts}' holds no non-empty line; write one "
                      f"prompt a line.")
    ids = [e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False)]
    return [np.asarray([BOS_ID, *x], np.int32) for x in ids], g.prompts
  store = prepared.train
  n = min(g.corpus_prompts, store.num_docs)
  docs = ((np.arange(n) + 0.5) * store.num_docs / n).astype(np.int64)
  return ([np.concatenate([[BOS_ID], store.doc(int(i))[:g.prompt_tokens]]).astype(np.int32)
           for i in docs], f"openings of {n} documents of the run's token store")


def left_pad(prompts: list[np.ndarray], rows: int, P: int) -> tuple[np.ndarray, np.ndarray]:
  """([rows, P] ids, [rows] pad counts): prompts right-aligned; missing rows repeat the last."""
  ids = np.zeros((rows, P), np.int32)
  pad = np.zeros((rows,), np.int32)
  for r in range(rows):
    p = prompts[min(r, len(prompts) - 1)]
    ids[r, P - len(p):] = p
    pad[r] = P - len(p)
  return ids, pad


def as_document(text: str) -> str:
  """One sample as one document of the text layout: no blank line inside it."""
  return re.sub(r"\n\s*\n", "\n", clean.normalize(text)).strip()


def decoder(graphdef, mesh, rules, new_tokens: int, sampling):
  """The jitted (params, ids [B, P], pad [B], key) -> [B, new_tokens] tokens."""
  def run(params, ids_BP, pad_B, key):
    with activation_sharding(mesh, rules):
      return cache_lib.generate(graphdef, params, ids_BP, pad_B, key, new_tokens, sampling)
  return jax.jit(run)


def run_generate(config, workdir) -> dict:
  """--mode=generate (see the module docstring); returns the manifest."""
  from babylm_jax.data import prepare, sources
  check_settings(config)
  g = config.generate
  out = os.path.abspath(g.out or os.path.join(workdir, "generated"))
  if os.path.exists(out) and not g.overwrite:
    raise UserError(f"'{out}' exists; pass --config.generate.overwrite=True to replace it or "
                    f"another --config.generate.out.")
  tok_path = os.path.join(workdir, "tokenizer.json")
  if not os.path.isfile(tok_path):
    raise DataError(f"workdir '{workdir}' holds no tokenizer.json; generate from the run's own "
                    f"--workdir (training writes it there).")
  t0 = time.time()
  mesh = make_mesh(config)
  graphdef, params, info = checkpoint_params.load_params(
      config, workdir, step=g.step, words=g.words, use_ema=g.use_ema, mesh=mesh)
  # The run's corpus: its words count toward a later run's budget (data/generated.py), and
  # its token store gives the default prompts.
  prepared = prepare.prepare_data(config)
  corpus_key = sources.resolve(config.data.path, config, "data.path").key
  prompts, prompt_source = _prompts(config, prepared.tokenizer, prepared)

  B = g.batch_size
  divisor = mesh.shape["data"] * mesh.shape["fsdp"]
  rows_sharding = batch_sharding(mesh) if B % divisor == 0 else replicated(mesh)
  run = decoder(graphdef, mesh, config.mesh.rules, g.max_new_tokens, sampling_of(config))
  P = max(len(p) for p in prompts)
  docs, tokens_generated = [], 0
  for b, first in enumerate(range(0, len(prompts), B)):
    chunk = prompts[first:first + B]
    ids, pad = left_pad(chunk, B, P)  # one P for every batch: one compile
    key = jax.random.fold_in(jax.random.key(g.seed), b)
    new = np.asarray(run(params, jax.device_put(ids, rows_sharding),
                         jax.device_put(pad, rows_sharding), key))[:len(chunk)]
    tokens_generated += new.size
    for row in tokenizer_decode(prepared.tokenizer, new):
      doc = as_document(row)
      if doc:
        docs.append(doc)
    interrupts.check()
    logging.info("generated %d of %d samples", min(first + B, len(prompts)), len(prompts))

  text = "\n\n".join(docs) + "\n"
  words = sum(clean.count_words(d) for d in docs)
  manifest = dict(
      file=generated_lib.TEXT_FILE, model_workdir=os.path.abspath(workdir),
      checkpoint=dict(path=info["path"], step=info["step"], words_seen=info["words_seen"],
                      use_ema=info["use_ema"]),
      sampling=dict(temperature=float(g.temperature), top_k=int(g.top_k), top_p=float(g.top_p),
                    max_new_tokens=int(g.max_new_tokens), seed=int(g.seed),
                    batch_size=int(g.batch_size)),
      prompts=dict(source=prompt_source, count=len(prompts), prompt_tokens=int(g.prompt_tokens)),
      samples=len(docs), tokens_generated=int(tokens_generated), words_generated=int(words),
      training_words=int(sum(prepared.train.meta["raw_words_per_domain"].values())),
      training_corpus_key=corpus_key, training_data_path=str(config.data.path),
      seconds=round(time.time() - t0, 3))
  if jax.process_index() == 0:
    _write(out, text, manifest, g.overwrite)
  print(f"wrote {len(docs)} samples, {words:,} words ({tokens_generated:,} tokens) to {out}; "
        f"the generating run's training corpus holds {manifest['training_words']:,} words.",
        flush=True)
  return manifest


def tokenizer_decode(tokenizer, tokens_BN) -> list[str]:
  return tokenizer.decode_batch([list(map(int, r)) for r in tokens_BN], skip_special_tokens=True)


def _write(out: str, text: str, manifest: dict, overwrite: bool):
  """The folder under a hidden temporary name, renamed into place once complete."""
  parent, name = os.path.split(out)
  tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
  os.makedirs(parent, exist_ok=True)
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.mkdir(tmp)
  with open(os.path.join(tmp, generated_lib.TEXT_FILE), "w", encoding="utf-8") as f:
    f.write(text)
  with open(os.path.join(tmp, generated_lib.MANIFEST), "w") as f:
    json.dump(manifest, f, indent=1)
  if overwrite and os.path.exists(out):
    old = os.path.join(parent, f".{name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old)
  else:
    os.rename(tmp, out)
