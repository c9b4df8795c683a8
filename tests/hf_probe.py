"""Loads an export with whatever transformers the running Python has; run by the tests.

  python hf_probe.py tokenizer EXPORT {none|false}   AutoTokenizer with trust_remote_code
                                                     unset or False; prints its class
  python hf_probe.py tokens EXPORT IN.json OUT.npz   token ids (and scored starts) of texts
  python hf_probe.py logits EXPORT IN.npz OUT.npz    logits of the LM classes, and the other
                                                     Auto classes loaded once; each load's
                                                     messages follow '== CLASS' on stderr

It imports nothing from babylm_jax or the tests, so that it runs in the environment pinned to
the BabyLM pipeline's versions (tests/pinned_env.py) as well as in the test environment. The
last stdout line is a JSON object naming the versions and classes used.
"""

import json
import sys

import numpy as np
import tokenizers
import transformers


def _tokenizer(export, trust=None):
  kwargs = {} if trust is None else {"trust_remote_code": trust}
  return transformers.AutoTokenizer.from_pretrained(export, **kwargs)


def _scored_start(offsets, text, completion_chars):
  """The first token the pipeline scores: the first whose span ends inside the completion."""
  bound = len(text) - completion_chars
  return next((i for i, (_, end) in enumerate(offsets) if end > bound), len(offsets))


def tokens(export, in_path, out_path):
  """Per group of IN.json: ids of each text (or pair) as AutoTokenizer gives them."""
  tok = _tokenizer(export, trust=False)
  out = {}
  for name, g in json.load(open(in_path))["groups"].items():
    kwargs = dict(add_special_tokens=g.get("special", True))
    if g.get("max_length"):
      kwargs.update(truncation=True, max_length=g["max_length"])
    if g.get("second") is not None:
      enc = tok(g["texts"], g["second"], **kwargs)
    else:
      enc = tok(g["texts"], return_offsets_mapping="completion_chars" in g, **kwargs)
    ids = enc["input_ids"]
    out[f"{name}/ids"] = np.array([t for row in ids for t in row], np.int32)
    out[f"{name}/lengths"] = np.array([len(row) for row in ids], np.int32)
    if "completion_chars" in g:
      out[f"{name}/starts"] = np.array(
          [_scored_start(o, t, c) for o, t, c in zip(enc["offset_mapping"], g["texts"],
                                                     g["completion_chars"])], np.int32)
  np.savez(out_path, **out)
  return dict(tokenizer=type(tok).__name__)


def logits(export, in_path, out_path):
  """Causal and masked logits of IN.npz's ids / attention_mask; the other classes loaded."""
  import torch
  batch = np.load(in_path)
  ids = torch.from_numpy(batch["input_ids"].astype(np.int64))
  mask = torch.from_numpy(batch["attention_mask"].astype(np.int64))
  out, classes = {}, {}
  for name in ("AutoModelForCausalLM", "AutoModelForMaskedLM"):
    print(f"== {name}", file=sys.stderr, flush=True)
    model = getattr(transformers, name).from_pretrained(export, trust_remote_code=True)
    assert not model.training, f"{name} is in training mode after from_pretrained"
    with torch.no_grad():
      out[name] = model(input_ids=ids, attention_mask=mask).logits.float().numpy()
    classes[name] = type(model).__name__
  print("== AutoModelForSequenceClassification", file=sys.stderr, flush=True)
  clf = transformers.AutoModelForSequenceClassification.from_pretrained(
      export, trust_remote_code=True, num_labels=3)
  with torch.no_grad():
    out["classifier"] = clf(input_ids=ids, attention_mask=mask).logits.float().numpy()
  print("== AutoModel", file=sys.stderr, flush=True)
  encoder = transformers.AutoModel.from_pretrained(export, trust_remote_code=True)
  classes.update(classifier=type(clf).__name__, encoder=type(encoder).__name__)
  np.savez(out_path, **out)
  return classes


def main(argv):
  command, export = argv[1], argv[2]
  if command == "tokenizer":
    tok = _tokenizer(export, trust={"none": None, "false": False}[argv[3]])
    info = dict(tokenizer=type(tok).__name__, module=type(tok).__module__)
  elif command == "tokens":
    info = tokens(export, argv[3], argv[4])
  elif command == "logits":
    info = logits(export, argv[3], argv[4])
  else:
    raise SystemExit(f"unknown command {command!r}")
  info.update(transformers=transformers.__version__, tokenizers=tokenizers.__version__)
  print(json.dumps(info), flush=True)


if __name__ == "__main__":
  main(sys.argv)
