"""What a sweep is: a base config, a budget, overrides shared by all, and named variants.

A sweep config (configs/sweeps/*.py) returns `sweep_config(...)`: a ConfigDict with one
section, `sweep`:
  base       the config file every variant starts from (e.g. configs/cpu_proxy.py)
  budget     a fraction of the base's training budget (its train.steps, else train.epochs)
  overrides  ((dotted key, value), ...) applied to every variant (learning curves, eval suites)
  variants   ({name, config, overrides}, ...): the first is the reference of the summary; a
             variant starts from `config` when set (another config file), else from `base`
  only       '' trains every variant in turn; a name trains that one alone
  corpora    ({name, recipe, overrides}, ...): corpus recipes (configs/corpora/*.py) that the
             sweep builds with --mode=corpus into WORKDIR/corpora/<name> before any variant
             trains; a variant reads one with data.path='{sweep}/corpora/<name>'
  tokenizer_from  a corpus name: one tokenizer is trained on it (WORKDIR/tokenizer) and every
             variant uses it, so that validation losses compare across corpora ('' : each
             run trains its own)
  prepare    ({name, creates, args}, ...): other launch.py commands (e.g. --mode=generate)
             run in order after the corpora and tokenizer and before any variant trains,
             each once: it is skipped when its `creates` path exists, so a command must make
             that path last (generate and corpus rename their output into place at the end)
`{sweep}` in a string value stands for the sweep's workdir (absolute).
`resolve` turns it into `Variant`s whose configs are built and checked in this process, so a
misspelt key or a bad value in the last variant stops the sweep before the first one trains.
"""

from __future__ import annotations

import dataclasses
import os
import re

import ml_collections

from babylm_jax import config as config_lib
from babylm_jax.errors import ConfigError, UserError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def sweep_config(*, base: str, variants, overrides: dict | None = None,
                 budget: float = 1.0, corpora: dict | None = None,
                 tokenizer_from: str = "", prepare=()) -> ml_collections.ConfigDict:
  """A sweep's ConfigDict.

  variants: a list of (name, {dotted key: value}), (name, 'configs/other.py') or
  (name, 'configs/other.py', {dotted key: value}).
  corpora: {name: 'configs/corpora/recipe.py'} or {name: ('configs/corpora/recipe.py',
  {dotted key: value})}.
  prepare: a list of (name, creates, [launch.py argument, ...]).
  """
  c = ml_collections.ConfigDict()
  c.sweep = ml_collections.ConfigDict()
  c.sweep.base = base
  c.sweep.budget = float(budget)
  c.sweep.overrides = tuple((overrides or {}).items())
  entries = []
  for v in variants:
    name, rest = v[0], list(v[1:])
    path = rest.pop(0) if rest and isinstance(rest[0], str) else ""
    own = rest.pop(0) if rest else {}
    if rest or not isinstance(own, dict):
      raise ConfigError(f"sweep variant {v!r} is malformed; write (name, {{key: value}}), "
                        f"(name, 'config.py') or (name, 'config.py', {{key: value}}).")
    entries.append(dict(name=name, config=path, overrides=tuple(own.items())))
  c.sweep.variants = tuple(entries)
  built = []
  for name, recipe in (corpora or {}).items():
    path, own = (recipe, {}) if isinstance(recipe, str) else recipe
    built.append(dict(name=name, recipe=path, overrides=tuple(own.items())))
  c.sweep.corpora = tuple(built)
  c.sweep.tokenizer_from = tokenizer_from
  steps = []
  for step in prepare:
    if not (len(step) == 3 and isinstance(step[0], str) and isinstance(step[1], str)
            and isinstance(step[2], (list, tuple)) and any(
                str(a).startswith("--mode=") for a in step[2])):
      raise ConfigError(f"sweep prepare step {step!r} is malformed; write (name, 'path it "
                        f"creates', ['--mode=...', ...launch.py arguments]).")
    steps.append(dict(name=step[0], creates=step[1], args=tuple(map(str, step[2]))))
  c.sweep.prepare = tuple(steps)
  c.sweep.only = ""
  return c


def in_workdir(sweep, workdir: str):
  """The sweep with `{sweep}` in its string values replaced by the workdir's absolute path,
  and, with tokenizer_from, every variant reading the sweep's one tokenizer."""
  root = os.path.abspath(workdir)
  s = sweep.sweep

  def fill(overrides):
    return tuple((k, v.replace("{sweep}", root) if isinstance(v, str) else v)
                 for k, v in overrides)

  out = ml_collections.ConfigDict(sweep.to_dict())
  with out.unlocked():
    shared = fill(s.overrides)
    if s.tokenizer_from:
      names = [c["name"] for c in s.corpora]
      if s.tokenizer_from not in names:
        raise ConfigError(f"sweep.tokenizer_from '{s.tokenizer_from}' is not one of the "
                          f"sweep's corpora ({', '.join(names) or 'none'}).")
      shared += (("tokenizer.path", tokenizer_file(workdir)),)
    out.sweep.overrides = shared
    out.sweep.variants = tuple(dict(v, overrides=fill(v["overrides"])) for v in s.variants)
    out.sweep.corpora = tuple(dict(c, overrides=fill(c["overrides"])) for c in s.corpora)
    out.sweep.prepare = tuple(
        dict(p, creates=p["creates"].replace("{sweep}", root),
             args=tuple(a.replace("{sweep}", root) for a in p["args"]))
        for p in s.get("prepare", ()))
  return out


def corpus_dir(workdir: str, name: str) -> str:
  return os.path.join(os.path.abspath(workdir), "corpora", name)


def tokenizer_file(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "tokenizer", "tokenizer.json")


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  config_file: str  # what launch.py gets as --config
  overrides: tuple[tuple[str, object], ...]  # every --config.KEY=VALUE, in order
  own: tuple[tuple[str, object], ...]  # the variant's own overrides (for the summary)
  config: ml_collections.ConfigDict  # the resolved config the run will have

  def command(self, workdir: str, mode: str = "train") -> list[str]:
    """launch.py's arguments for this variant (after `python launch.py`)."""
    return [f"--mode={mode}", "--config", self.config_file, "--workdir", workdir,
            *settings(self.overrides)]


def parse_flags(config_file: str, settings: list[str], where: str):
  """The config launch.py builds from `--config config_file` and these --config.KEY=VALUE
  flags, read by the same parser (so a variant is exactly what its command line says)."""
  from absl import flags
  from ml_collections import config_flags
  from babylm_jax import config_files
  keys = [f.split("=", 1)[0][len("--config."):] for f in settings]
  try:
    config_lib.check_override_keys(config_files.load(config_file), keys)
    argv = ["launch.py", "--config", config_file, *settings]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, flag_values=values,
                                             lock_config=True, sys_argv=argv)
    values(argv)
  except flags.Error as e:
    raise ConfigError(f"{where}: {str(e).splitlines()[0]}; give a value of the field's "
                      f"type.") from None
  except ConfigError as e:
    raise ConfigError(f"{where}: {e}") from None
  return holder.value


def budget_overrides(config, budget: float) -> tuple[tuple[str, object], ...]:
  """The override that scales a config's training budget: train.steps if it sets them, else
  train.epochs."""
  if budget == 1.0:
    return ()
  if not 0.0 < budget:
    raise ConfigError(f"sweep.budget ({budget}) must be positive.")
  if config.train.steps is not None:
    return (("train.steps", max(1, round(config.train.steps * budget))),)
  return (("train.epochs", config.train.epochs * budget),)


def resolve(sweep) -> list[Variant]:
  """Every variant with its resolved, checked config."""
  s = sweep.sweep
  if not s.variants:
    raise ConfigError("sweep.variants is empty; name at least one variant.")
  names = [v["name"] for v in s.variants]
  for name in names:
    if not isinstance(name, str) or not _NAME.match(name):
      raise ConfigError(f"sweep variant name {name!r} must be letters, digits, '_', '-' or "
                        f"'.' (it names a folder).")
  if len(set(names)) != len(names):
    raise ConfigError(f"sweep variant names {names} repeat; give each variant its own name.")
  out = []
  for v in s.variants:
    path = v["config"] or s.base
    where = f"sweep variant '{v['name']}'"
    if not os.path.isfile(path):
      raise UserError(f"the config file '{path}' of {where} does not exist; set sweep.base "
                      f"(or the variant's config) to a file in configs/.")
    base = parse_flags(path, [], where)
    overrides = tuple(dict(budget_overrides(base, s.budget) + tuple(s.overrides)
                           + tuple(v["overrides"])).items())
    config = parse_flags(path, settings(overrides), where)
    try:
      config_lib.derive(config)
    except ConfigError as e:
      raise ConfigError(f"{where}: {e}") from None
    out.append(Variant(v["name"], path, overrides, tuple(v["overrides"]), config))
  return out


def settings(overrides) -> list[str]:
  """--config.KEY=VALUE flags, each value written as launch.py reads it back."""
  return [f"--config.{k}={repr(tuple(v)) if isinstance(v, (list, tuple)) else v}"
          for k, v in overrides]
