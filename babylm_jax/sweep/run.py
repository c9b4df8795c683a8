"""`--mode=sweep`: train and evaluate a sweep's variants one after another, then summarise.

Each variant is an ordinary run of launch.py in WORKDIR/<variant>/, started as a child process
with the variant's overrides as --config flags (the log shows each command):

  python launch.py --mode=train --config BASE --workdir WORKDIR/<variant> --config.KEY=VALUE ...
  python launch.py --mode=eval  --config BASE --workdir WORKDIR/<variant> --config.KEY=VALUE ...

Child processes, because then a variant is exactly the run a person would start by hand, and
it resumes as single runs do: run the sweep again and finished variants are skipped, the one
that was running resumes from its newest checkpoint, and the rest follow. Each variant also
gets a fresh process (no memory or compiled programs carried from one to the next), and this
process never touches an accelerator (on a TPU VM the child owns the chips). A child dies with
the sweep (PR_SET_PDEATHSIG, Linux), so a killed sweep leaves no run training behind it;
SIGTERM is passed on to the child, which saves a checkpoint, and the sweep stops after it.

Before any variant trains, the sweep's corpora are built (--mode=corpus), its one tokenizer
trained, and its prepare steps run (any launch.py command, e.g. --mode=generate), each as a
child and each once: what exists already is not made again.

`--config.sweep.only=NAME` trains and evaluates that variant alone, so that each variant can
be its own job on a cluster with the same command. After every variant, and at the end,
WORKDIR/summary.{json,md,png} are rewritten from what all the variants' workdirs hold.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shlex
import signal
import subprocess
import sys

from babylm_jax import config as config_lib
from babylm_jax.errors import ConfigError, UserError
from babylm_jax.sweep import spec, summary

LAUNCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "launch.py")
_PR_SET_PDEATHSIG = 1


def _libc():
  try:
    return ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None
  except OSError:
    return None


class _Children:
  """Runs one child at a time; passes SIGTERM on to it and remembers that it came."""

  def __init__(self, extra_flags: list[str]):
    self.extra_flags = extra_flags
    self.stopping = False
    self._proc = None
    self._libc = _libc()  # loaded before any fork: the child only makes one call
    try:
      signal.signal(signal.SIGTERM, self._on_term)
    except ValueError:  # not the main thread
      pass

  def _on_term(self, signum, frame):
    logging.warning("sweep: SIGTERM received: passing it on and stopping after this run.")
    self.stopping = True
    if self._proc is not None and self._proc.poll() is None:
      self._proc.send_signal(signal.SIGTERM)

  def _die_with_parent(self):
    self._libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

  def run(self, variant: spec.Variant, workdir: str, mode: str):
    self.launch(f"variant '{variant.name}'", mode,
                variant.command(workdir, mode) + self.extra_flags)

  def launch(self, what: str, mode: str, args: list[str]):
    self._proc = subprocess.Popen(
        [sys.executable, LAUNCH, *args],
        preexec_fn=self._die_with_parent if self._libc is not None else None)
    logging.info("sweep: %s: %s (pid %d): python launch.py %s", what, mode,
                 self._proc.pid, shlex.join(args))
    try:
      code = self._proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the child too: let it finish its exit
      self._proc.wait()
      raise UserError(f"the sweep was interrupted during {what}; run the "
                      f"same command again to resume it.") from None
    finally:
      self._proc = None
    if code != 0 and not self.stopping:  # after SIGTERM an evaluation may end unfinished
      raise UserError(f"{what} stopped in --mode={mode} with exit code "
                      f"{code} (its message is above); fix the cause and run the sweep again: "
                      f"what has finished is kept.")


def _build_corpora(sweep, workdir: str, children: _Children):
  """Builds the sweep's corpora (each once: a finished one has its manifest) and, with
  tokenizer_from, the one tokenizer every variant reads."""
  from babylm_jax.data import corpus
  s = sweep.sweep
  for c in s.corpora:
    target = spec.corpus_dir(workdir, c["name"])
    if os.path.isfile(os.path.join(target, corpus.MANIFEST)):
      continue
    if children.stopping:
      return
    children.launch(f"corpus '{c['name']}'", "corpus",
                    ["--mode=corpus", "--config", c["recipe"], "--workdir", target,
                     *spec.settings(c["overrides"])])
  if s.tokenizer_from and not os.path.isfile(spec.tokenizer_file(workdir)):
    if children.stopping:
      return
    shared = [(k, v) for k, v in s.overrides if k != "tokenizer.path"]
    shared.append(("data.path", spec.corpus_dir(workdir, s.tokenizer_from)))
    children.launch("the sweep's tokenizer", "prepare",
                    ["--mode=prepare", "--config", s.base, "--workdir",
                     os.path.dirname(spec.tokenizer_file(workdir)), *spec.settings(shared)])


def _prepare(sweep, children: _Children):
  """Runs the sweep's prepare steps in order, each unless the path it creates exists."""
  for p in sweep.sweep.get("prepare", ()):
    if os.path.exists(p["creates"]):
      continue
    if children.stopping:
      return
    mode = next(a for a in p["args"] if a.startswith("--mode=")).split("=", 1)[1]
    children.launch(f"prepare step '{p['name']}'", mode, list(p["args"]))
    if not children.stopping and not os.path.exists(p["creates"]):
      raise UserError(f"prepare step '{p['name']}' finished without creating "
                      f"'{p['creates']}'; fix the step's command or its creates path.")


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = json.loads(json.dumps(v, default=str))  # tuples as lists
  return out


# How often a run saves and how many saves it keeps: they do not change what it trains
# (resumption is exact), so a sweep may save more often than when a variant started.
_CADENCE = ("checkpoint.every", "checkpoint.keep")


def _check_unchanged(variant: spec.Variant, workdir: str):
  """Refuses to resume or reuse a variant's run that was made with other settings.

  A field that the run's config.json lacks and that the sweep leaves at its default is a field
  added to the code since the run started (every new field's default keeps the old behaviour),
  not a changed setting: updating the checkout under a long sweep must not strand its runs."""
  saved = summary.read_json(os.path.join(workdir, "config.json"))
  if saved is None:
    return
  saved.pop("derived", None)
  saved, now = _flat(saved), _flat(variant.config.to_dict())
  defaults = _flat(config_lib.base_config().to_dict())
  for key in set(now) - set(saved):
    if key in defaults and now[key] == defaults[key]:
      now.pop(key)
  # Training from an export sets the tokenizer to the exported one.
  ignored = _CADENCE + (("tokenizer.path",) if now.get("init.from_hf") else ())
  for key in ignored:
    saved.pop(key, None)
    now.pop(key, None)
  for key in sorted(set(saved) | set(now)):
    if saved.get(key) != now.get(key):
      raise UserError(f"variant '{variant.name}' in '{workdir}' was trained with "
                      f"{key}={saved.get(key)!r} but the sweep now gives {now.get(key)!r}; "
                      f"rename the variant or remove that folder.")


def run_sweep(sweep, workdir: str, extra_flags: list[str] | None = None) -> list[dict]:
  """Trains and evaluates the variants (or sweep.only), writes the summary, returns its rows."""
  import jax
  jax.config.update("jax_platforms", "cpu")  # this process only reads files and counts params
  if "sweep" not in sweep:
    raise ConfigError("--mode=sweep needs a sweep config with a 'sweep' section, e.g. "
                      "--config configs/sweeps/seed_questions.py.")
  if not os.path.isfile(LAUNCH):
    raise UserError(f"'{LAUNCH}' is missing; run sweeps from a checkout of the repository.")
  sweep = spec.in_workdir(sweep, workdir)
  variants = spec.resolve(sweep)
  only = sweep.sweep.only
  names = [v.name for v in variants]
  if only and only not in names:
    raise ConfigError(f"sweep.only '{only}' is not a variant of this sweep; use one of "
                      f"{', '.join(names)}.")
  os.makedirs(workdir, exist_ok=True)
  parameters = {v.name: summary.num_params(v.config) for v in variants}
  children = _Children(list(extra_flags or []))
  todo = [v for v in variants if not only or v.name == only]
  _build_corpora(sweep, workdir, children)
  _prepare(sweep, children)
  for i, v in enumerate(todo, start=1):
    if children.stopping:
      break
    wd = os.path.join(workdir, v.name)
    _check_unchanged(v, wd)
    if summary.trained(wd):
      logging.info("sweep: variant '%s' (%d/%d) is trained; not training it again.", v.name, i,
                   len(todo))
    else:
      children.run(v, wd, "train")
      if children.stopping:
        break
      if not summary.trained(wd):
        raise UserError(f"variant '{v.name}' ended before its last step (is train.stop_after "
                        f"set?); a sweep trains every variant to the end.")
    if summary.eval_reports(wd, v.config) is None:
      children.run(v, wd, "eval")
      summary.write(workdir, sweep, variants, parameters)  # progress, for whoever looks
  rows = summary.write(workdir, sweep, variants, parameters)
  with open(os.path.join(workdir, "summary.md")) as f:
    print(f.read(), flush=True)
  return rows
