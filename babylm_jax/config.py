"""The one config tree and the one place where derived quantities are computed.

`base_config()` holds every field with its default; `configs/*.py` start from it and change
what their recipe needs. `derive()` turns a config (and, when known, the measured corpus size)
into the numbers the rest of the code uses: steps, warmup, cooldown, and the sequence-length
phases with their batch rows. It validates once and raises `ConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from typing import Iterable

import ml_collections
from ml_collections import config_dict

from babylm_jax.errors import ConfigError

NUM_SPECIAL_TOKENS = 16
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<mask>") + tuple(
    f"<special_{i}>" for i in range(11))
UNK_ID, BOS_ID, EOS_ID, PAD_ID, MASK_ID = range(5)

# BabyLM 2025: corpus word budget and the cap on words seen in training (ten epochs).
TRACKS = {
    "strict_small": dict(word_budget=10_000_000, exposure_cap=100_000_000),
    "strict": dict(word_budget=100_000_000, exposure_cap=1_000_000_000),
}


# The checkout this package sits in. Default paths in configs are written relative to it, so
# that they work from any current folder.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def repo_path(relative: str) -> str:
  """A path written relative to the repository root, made absolute."""
  return os.path.normpath(os.path.join(REPO_ROOT, relative))


def base_config() -> ml_collections.ConfigDict:
  """Every field with its default. Recipes in configs/ override what they need."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # BabyLM track: 'strict_small' (10M words) or 'strict' (100M words).
  c.track = "strict_small"
  # Set for runs that knowingly break the track's word budget / exposure cap.
  c.outside_rules = False

  c.data = ml_collections.ConfigDict()
  # A folder or glob of *.train/*.dev/*.test/*.txt files, 'hf:ORG/NAME' (Hugging Face Hub
  # dataset repository) or 'tfds:name/config:split'.
  c.data.path = repo_path("../shared/data/babylm_text/train_600k")
  c.data.hf_revision = "main"
  c.data.hf_glob = "*.train"
  c.data.tfds_text_field = "text"
  # Held-out text for validation loss: a path like data.path, or '' to keep
  # data.dev_fraction of the documents out of training.
  c.data.dev_path = ""
  c.data.dev_fraction = 0.005
  # Where token stores are cached; '' means $BABYLM_JAX_CACHE or ~/.cache/babylm_jax.
  c.data.cache_dir = ""
  c.data.allow_over_budget = False
  # Train on a corpus that does not look like text (over 1% of its bytes not UTF-8, or over
  # 5 tokens per word); refused by default.
  c.data.allow_binary = False
  # Tokens per word assumed before a corpus is measured (only for the nominal recipe).
  c.data.tokens_per_word_estimate = 1.62
  c.data.clean = ml_collections.ConfigDict()
  c.data.clean.strip_speaker_tags = False
  c.data.clean.wiki_headings_as_boundaries = True
  c.data.clean.blank_lines_as_boundaries = True
  # Keep a heading's title as the first line of the document it opens (else drop it).
  c.data.clean.keep_heading_titles = False
  # Longer documents are cut at a whitespace (one-line sample files hold megabytes).
  c.data.clean.max_doc_chars = 20_000
  # Documents encoded per tokenizer call while building a token store.
  c.data.encode_batch_docs = 4096

  c.tokenizer = ml_collections.ConfigDict()
  # A tokenizer.json to load; '' trains one on the corpus (vocab size from model.vocab_size).
  c.tokenizer.path = ""
  c.tokenizer.min_frequency = 2

  c.model = ml_collections.ConfigDict()
  c.model.vocab_size = 8192
  c.model.hidden_size = 384
  c.model.num_layers = 12
  c.model.num_heads = 6
  c.model.intermediate_size = 1280
  c.model.position_bucket_size = 32
  c.model.max_position = 512
  c.model.dropout = 0.1
  c.model.layer_norm_eps = 1e-5
  # 'gpt_bert' (weighted sum of all earlier sublayer outputs), 'elc' (ELC-BERT per-layer
  # softmax weights) or 'residual' (plain residual stream).
  c.model.layer_weighting = "gpt_bert"
  c.model.compute_dtype = "float32"

  c.objective = ml_collections.ConfigDict()
  c.objective.causal_fraction = 1 / 16  # fraction of rows that are causal (15:1)
  c.objective.masked_weight = 15 / 16  # r in r*masked + (1-r)*causal
  c.objective.mask_rate_start = 0.30
  c.objective.mask_rate_end = 0.15
  c.objective.max_span = 3
  c.objective.mask_token_prob = 0.8
  c.objective.random_token_prob = 0.1
  c.objective.z_loss = 1e-4

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 10.0
  c.train.steps = config_dict.placeholder(int)  # overrides the recipe's step count
  # Stop (with a checkpoint) after this step without changing the schedules: a run in stages.
  c.train.stop_after = config_dict.placeholder(int)
  c.train.tokens_per_step = 16_384
  c.train.seq_lens = (128, 256, 512)
  c.train.seq_len_fractions = (0.6, 0.2, 0.2)
  c.train.optimizer = "adamw"  # or 'lamb'
  c.train.lr = 7e-3
  c.train.b1 = 0.9
  c.train.b2 = 0.98
  c.train.eps = 1e-8
  c.train.weight_decay = 0.1
  c.train.grad_clip = 2.0
  c.train.warmup_fraction = 0.016
  c.train.cooldown_fraction = 0.016
  c.train.min_lr_ratio = 0.1
  c.train.ema_decay = 0.999
  c.train.micro_batches = 1  # gradient accumulation
  # Fraction of a batch's positions given to the vocabulary projection (gathered at the
  # targets); a batch with more targets projects every position. Speed only, never results.
  c.train.target_capacity = 0.5
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.eval_batches = 8
  c.train.prefetch = 2
  # Test hook: make the loss non-finite at this step (-1: never).
  c.train.inject_nan_at_step = -1

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  # Logical axis name -> mesh axes (a string, a tuple of strings, or None for replicated).
  c.mesh.rules = (
      ("batch", ("data", "fsdp")),
      ("vocab", "tensor"),
      ("embed", "fsdp"),
      ("qkv", "tensor"),
      ("mlp", "tensor"),
      ("heads", "tensor"),
      ("layers", None),
      ("positions", None),
      ("length", None),
  )

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 1000
  c.checkpoint.keep = 3
  c.checkpoint.milestones = True
  # Start over: move the workdir's checkpoints, milestones and metrics into
  # discarded/<time>/ and train from step 0 (never needed to resume).
  c.checkpoint.restart = False

  c.eval = ml_collections.ConfigDict()
  c.eval.suites = "blimp"
  c.eval.backend = "causal,mntp"
  c.eval.step = config_dict.placeholder(int)
  c.eval.words = config_dict.placeholder(int)  # a milestone by words seen
  c.eval.use_ema = True
  c.eval.batch_size = 64
  # Padded tokens per scoring batch; rows = tokens_per_batch // bucket length.
  c.eval.tokens_per_batch = 1024
  c.eval.data = ml_collections.ConfigDict()
  c.eval.data.blimp = repo_path("../shared/data/blimp")
  c.eval.data.blimp_fast = repo_path("../shared/data/babylm_eval/fast_eval/blimp_fast")
  c.eval.data.supplement = repo_path("../shared/data/babylm_eval/fast_eval/supplement_fast")
  c.eval.data.ewok = repo_path("../shared/data/babylm_eval/fast_eval/ewok_fast")
  c.eval.data.entity_tracking = repo_path("../shared/data/babylm_eval/entity_tracking")

  c.finetune = ml_collections.ConfigDict()
  c.finetune.task = "rte"
  c.finetune.data_dir = repo_path("../shared/data/babylm_eval/glue_filtered")
  c.finetune.lr = 3e-5
  c.finetune.batch_size = 32
  c.finetune.weight_decay = 0.01
  c.finetune.warmup_fraction = 0.06
  c.finetune.epochs = config_dict.placeholder(int)  # default 10, 30 for wsc
  c.finetune.max_length = 256
  c.finetune.max_train_examples = config_dict.placeholder(int)
  c.finetune.max_valid_examples = config_dict.placeholder(int)
  c.finetune.seed = 0

  c.export = ml_collections.ConfigDict()
  c.export.dir = ""
  c.export.step = config_dict.placeholder(int)
  c.export.words = config_dict.placeholder(int)
  c.export.milestones = False  # also export every milestone as a sub-folder
  c.export.use_ema = True
  c.export.overwrite = False

  c.init = ml_collections.ConfigDict()
  c.init.from_hf = ""  # an exported folder to start from
  return c


# ---------------------------------------------------------------------------------------
# Derived quantities.


@dataclasses.dataclass(frozen=True)
class Phase:
  """A span of steps [start, end) trained at one sequence length."""
  start: int
  end: int
  seq_len: int
  batch_rows: int


@dataclasses.dataclass(frozen=True)
class Derived:
  total_steps: int
  warmup_steps: int
  cooldown_steps: int
  tokens_per_step: int
  phases: tuple[Phase, ...]
  word_budget: int
  exposure_cap: int
  corpus_tokens: int | None
  corpus_words: int | None

  def phase_at(self, step: int) -> Phase:
    for p in self.phases:
      if step < p.end:
        return p
    return self.phases[-1]

  @property
  def max_seq_len(self) -> int:
    return max(p.seq_len for p in self.phases)

  @property
  def planned_words(self) -> int | None:
    """Words the run will see: steps x tokens per step / (corpus tokens per word)."""
    if not self.corpus_tokens or not self.corpus_words:
      return None
    return round(self.total_steps * self.tokens_per_step * self.corpus_words / self.corpus_tokens)


def _require(cond: bool, msg: str):
  if not cond:
    raise ConfigError(msg)


def _field(config, path: str):
  value = config
  for key in path.split("."):
    value = value[key]
  return value


def _positive(config, path: str, *, allow_none: bool = False, zero: bool = False):
  """The field at `path` must be > 0 (>= 0 with zero=True); None only where allow_none."""
  value = _field(config, path)
  if value is None and allow_none:
    return
  ok = value is not None and (value >= 0 if zero else value > 0)
  _require(ok, f"{path} ({value}) must be {'at least 0' if zero else 'positive'}; set "
               f"--config.{path} to a {'non-negative' if zero else 'positive'} number.")


def _fraction(config, path: str, low_open: bool = False, high_open: bool = True):
  """The field at `path` must lie in [0, 1) (or the interval the flags say)."""
  value = _field(config, path)
  ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
  interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
  _require(ok, f"{path} ({value}) must lie in {interval}; change --config.{path}.")


def track_limits(config) -> tuple[int, int]:
  _require(config.track in TRACKS,
           f"track '{config.track}' is unknown; set --config.track to one of {sorted(TRACKS)}.")
  t = TRACKS[config.track]
  return t["word_budget"], t["exposure_cap"]


def mask_rate(config, step: int, total_steps: int) -> float:
  """The span-masking rate at a step: linear from mask_rate_start to mask_rate_end."""
  o = config.objective
  frac = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
  return o.mask_rate_start + (o.mask_rate_end - o.mask_rate_start) * frac


# ---------------------------------------------------------------------------------------
# Validation: every field, by section, before any data is read or device touched.


def _check_data(c):
  _require(bool(c.data.path), "data.path is empty; set --config.data.path to a folder of "
                              "BabyLM text files.")
  if not c.data.dev_path:
    _fraction(c, "data.dev_fraction", low_open=True)
  for path in ("data.encode_batch_docs", "data.tokens_per_word_estimate",
               "data.clean.max_doc_chars"):
    _positive(c, path)
  _positive(c, "tokenizer.min_frequency", zero=True)


def _check_model(c):
  m = c.model
  _require(m.vocab_size > NUM_SPECIAL_TOKENS,
           f"model.vocab_size ({m.vocab_size}) must exceed the {NUM_SPECIAL_TOKENS} special "
           f"tokens, and a byte-level BPE needs {NUM_SPECIAL_TOKENS + 256} "
           f"({NUM_SPECIAL_TOKENS} special + 256 bytes); raise --config.model.vocab_size.")
  for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size",
               "position_bucket_size", "max_position", "layer_norm_eps"):
    _positive(c, f"model.{name}")
  _require(m.hidden_size % m.num_heads == 0,
           f"model.hidden_size ({m.hidden_size}) must be a multiple of model.num_heads "
           f"({m.num_heads}); change one of them.")
  _fraction(c, "model.dropout")
  _require(m.layer_weighting in ("gpt_bert", "elc", "residual"),
           f"model.layer_weighting '{m.layer_weighting}' is unknown; use gpt_bert, elc or "
           f"residual.")
  _require(m.compute_dtype in ("float32", "bfloat16", "float16"),
           f"model.compute_dtype '{m.compute_dtype}' is unknown; use float32 or bfloat16.")


def _check_objective(c):
  o = c.objective
  _require(0.0 <= o.causal_fraction <= 1.0,
           "objective.causal_fraction must lie in [0, 1].")
  _require(0.0 <= o.masked_weight <= 1.0, "objective.masked_weight must lie in [0, 1].")
  for name in ("mask_rate_start", "mask_rate_end"):
    _require(0.0 < o[name] < 1.0, f"objective.{name} must lie in (0, 1).")
  _require(o.mask_token_prob >= 0 and o.random_token_prob >= 0
           and o.mask_token_prob + o.random_token_prob <= 1.0,
           "objective.mask_token_prob + objective.random_token_prob must not exceed 1.")
  _require(o.max_span >= 1, "objective.max_span must be at least 1.")
  _positive(c, "objective.z_loss", zero=True)


def _check_train(c):
  t, m = c.train, c.model
  _positive(c, "train.steps", allow_none=True)
  _positive(c, "train.stop_after", allow_none=True)
  if t.steps is None:
    _require(t.epochs > 0, "train.epochs must be positive (or set train.steps).")
  _positive(c, "train.tokens_per_step")
  seq_lens, fracs = tuple(t.seq_lens), tuple(t.seq_len_fractions)
  _require(len(seq_lens) == len(fracs) and seq_lens,
           "train.seq_lens and train.seq_len_fractions must have the same, non-zero length.")
  _require(abs(sum(fracs) - 1.0) < 1e-6 and all(f >= 0 for f in fracs),
           f"train.seq_len_fractions {fracs} must be non-negative and sum to 1.")
  for T in seq_lens:
    _require(T > 0 and t.tokens_per_step % T == 0,
             f"train.tokens_per_step ({t.tokens_per_step}) must be a multiple of every "
             f"train.seq_lens entry ({T} is not); change one of them.")
    _require(T <= m.max_position,
             f"train.seq_lens entry {T} exceeds model.max_position ({m.max_position}).")
  _require(t.micro_batches >= 1, "train.micro_batches must be at least 1.")
  for T in seq_lens:
    rows = t.tokens_per_step // T
    _require(rows % t.micro_batches == 0,
             f"train.micro_batches ({t.micro_batches}) must divide the {rows} rows of a "
             f"step at length {T}; change train.micro_batches or train.tokens_per_step.")
  _require(0 <= t.warmup_fraction and 0 <= t.cooldown_fraction
           and t.warmup_fraction + t.cooldown_fraction < 1.0,
           "train.warmup_fraction + train.cooldown_fraction must be below 1.")
  _require(t.optimizer in ("adamw", "lamb"),
           f"train.optimizer '{t.optimizer}' is unknown; use adamw or lamb.")
  for name in ("lr", "grad_clip", "log_every", "eval_every", "eval_batches"):
    _positive(c, f"train.{name}")
  for name in ("eps", "weight_decay", "prefetch"):
    _positive(c, f"train.{name}", zero=True)
  for name in ("b1", "b2"):
    _fraction(c, f"train.{name}")
  for name in ("min_lr_ratio", "ema_decay"):
    _fraction(c, f"train.{name}", high_open=False)
  _fraction(c, "train.target_capacity", low_open=True, high_open=False)


def _check_mesh(c):
  for name in ("data", "fsdp", "tensor"):
    n = c.mesh[name]
    _require(n == -1 or n >= 1, f"mesh.{name} ({n}) must be -1 (fill the rest) or at least "
                                f"1; change --config.mesh.{name}.")


def _check_checkpoint(c):
  _positive(c, "checkpoint.every")
  _positive(c, "checkpoint.keep")


def _check_eval_and_export(c):
  for path in ("eval.batch_size", "eval.tokens_per_batch", "finetune.lr",
               "finetune.batch_size", "finetune.max_length"):
    _positive(c, path)
  for path in ("eval.step", "eval.words", "export.step", "export.words"):
    _positive(c, path, allow_none=True, zero=True)
  for path in ("finetune.epochs", "finetune.max_train_examples", "finetune.max_valid_examples"):
    _positive(c, path, allow_none=True)
  _positive(c, "finetune.weight_decay", zero=True)
  _fraction(c, "finetune.warmup_fraction")
  _require(c.export.step is None or c.export.words is None,
           "export.step and export.words are both set; pass only one of them.")


# Section by section; a section added to base_config() adds its check here.
CHECKS = (_check_data, _check_model, _check_objective, _check_train, _check_mesh,
          _check_checkpoint, _check_eval_and_export)


def validate(config):
  """Checks every field once; raises ConfigError naming the first bad one and its fix."""
  track_limits(config)
  for check in CHECKS:
    check(config)


# ---------------------------------------------------------------------------------------
# The derived numbers.


def derive(config, corpus_tokens: int | None = None,
           corpus_words: int | None = None) -> Derived:
  """Validates `config` and computes steps, warmup/cooldown and length phases.

  Without a measured corpus the step count is the nominal recipe: the track's word budget x
  epochs x data.tokens_per_word_estimate / tokens_per_step.
  """
  validate(config)
  t = config.train
  word_budget, exposure_cap = track_limits(config)
  seq_lens, fracs = tuple(t.seq_lens), tuple(t.seq_len_fractions)

  if t.steps is not None:
    total = int(t.steps)
  else:
    tokens = corpus_tokens
    if tokens is None:
      tokens = word_budget * config.data.tokens_per_word_estimate
    total = max(1, math.ceil(t.epochs * tokens / t.tokens_per_step))

  # Phase boundaries at the rounded cumulative fractions; the last ends at `total`.
  bounds = [round(sum(fracs[:i + 1]) * total) for i in range(len(fracs))]
  bounds[-1] = total
  phases, start = [], 0
  for T, end in zip(seq_lens, bounds):
    end = max(end, start)
    if end > start:
      phases.append(Phase(start, end, T, t.tokens_per_step // T))
    start = end

  warmup = round(t.warmup_fraction * total)
  cooldown = round(t.cooldown_fraction * total)
  return Derived(total_steps=total, warmup_steps=warmup, cooldown_steps=cooldown,
                 tokens_per_step=t.tokens_per_step, phases=tuple(phases),
                 word_budget=word_budget, exposure_cap=exposure_cap,
                 corpus_tokens=corpus_tokens, corpus_words=corpus_words)


# ---------------------------------------------------------------------------------------
# Helpers for the command line.


def flat_keys(config, prefix: str = "") -> list[str]:
  """All dotted field names of a ConfigDict, leaves and sub-dicts."""
  keys = []
  for k, v in config.items():
    name = f"{prefix}{k}"
    keys.append(name)
    if isinstance(v, ml_collections.ConfigDict):
      keys.extend(flat_keys(v, name + "."))
  return keys


def nearest_key(config, key: str) -> str | None:
  matches = difflib.get_close_matches(key, flat_keys(config), n=1, cutoff=0.0)
  return matches[0] if matches else None


def check_override_keys(config, keys: Iterable[str]):
  """Raises ConfigError for the first override key that the config does not have."""
  existing = set(flat_keys(config))
  for key in keys:
    if key not in existing:
      near = nearest_key(config, key)
      raise ConfigError(f"--config.{key} is not a config field; did you mean "
                        f"--config.{near}?")


def to_dict(config) -> dict:
  """A JSON-serialisable dict of the resolved config."""
  return config.to_dict()


def _as_tuples(value):
  return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def _fill(config, values: dict, where: str, prefix: str = ""):
  for key, value in values.items():
    name = prefix + key
    if key not in config:
      raise ConfigError(f"{where} has a field '{name}' that this version of babylm_jax does not "
                        f"know; pass the run's --config file instead.")
    if isinstance(config[key], ml_collections.ConfigDict):
      _fill(config[key], value, where, name + ".")
    else:
      config[key] = _as_tuples(value)


def from_run(workdir) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to workdir/config.json, over base_config()."""
  import json
  from etils import epath
  path = epath.Path(workdir) / "config.json"
  if not path.exists():
    raise ConfigError(f"'{path}' does not exist, so the run's config is unknown; train in "
                      f"that --workdir first, or pass --config with the run's recipe.")
  try:
    values = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ConfigError(f"'{path}' cannot be read as JSON ({type(e).__name__}); pass --config "
                      f"with the run's recipe instead.") from None
  values.pop("derived", None)
  config = base_config()
  _fill(config, values, str(path))
  return config
