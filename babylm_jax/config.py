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
  c.data.path = "../shared/data/babylm_text/train_600k"
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
  # Learning curves: these zero-shot suites (a comma list of eval suites; '' for none) scored
  # with eval_suites_backend on the EMA parameters during training, at the start, at the
  # BabyLM milestones (eval_suites_every_words = 0: every 1M words to 10M, every 10M to 100M,
  # ...) or every N words, and at the last step; each suite cut to a fixed subset of about
  # eval_suites_max_items items (0: whole suites). The full evaluation is --mode=eval.
  c.train.eval_suites = ""
  c.train.eval_suites_backend = "causal"
  c.train.eval_suites_every_words = 0
  c.train.eval_suites_max_items = 2000
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

  c.eval = ml_collections.ConfigDict()
  c.eval.suites = "blimp"
  c.eval.backend = "causal,mntp"
  c.eval.step = config_dict.placeholder(int)
  c.eval.words = config_dict.placeholder(int)  # a milestone by words seen
  c.eval.use_ema = True
  c.eval.batch_size = 64
  # Padded tokens per scoring batch; rows = tokens_per_batch // bucket length.
  c.eval.tokens_per_batch = 1024
  # Score about this many items per suite (the same number from each paradigm, a fixed draw),
  # as the learning curves do; unset: whole suites.
  c.eval.max_items = config_dict.placeholder(int)
  c.eval.data = ml_collections.ConfigDict()
  c.eval.data.blimp = "../shared/data/blimp"
  c.eval.data.blimp_fast = "../shared/data/babylm_eval/fast_eval/blimp_fast"
  c.eval.data.supplement = "../shared/data/babylm_eval/fast_eval/supplement_fast"
  c.eval.data.ewok = "../shared/data/babylm_eval/fast_eval/ewok_fast"
  c.eval.data.entity_tracking = "../shared/data/babylm_eval/entity_tracking"

  c.finetune = ml_collections.ConfigDict()
  c.finetune.task = "rte"
  c.finetune.data_dir = "../shared/data/babylm_eval/glue_filtered"
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


def derive(config, corpus_tokens: int | None = None,
           corpus_words: int | None = None) -> Derived:
  """Validates `config` and computes steps, warmup/cooldown and length phases.

  Without a measured corpus the step count is the nominal recipe: the track's word budget x
  epochs x data.tokens_per_word_estimate / tokens_per_step.
  """
  m, t, o = config.model, config.train, config.objective
  word_budget, exposure_cap = track_limits(config)
  _require(m.vocab_size > NUM_SPECIAL_TOKENS,
           f"model.vocab_size ({m.vocab_size}) must exceed the {NUM_SPECIAL_TOKENS} special "
           f"tokens; raise --config.model.vocab_size.")
  _require(m.hidden_size % m.num_heads == 0,
           f"model.hidden_size ({m.hidden_size}) must be a multiple of model.num_heads "
           f"({m.num_heads}); change one of them.")
  _require(m.layer_weighting in ("gpt_bert", "elc", "residual"),
           f"model.layer_weighting '{m.layer_weighting}' is unknown; use gpt_bert, elc or "
           f"residual.")
  _require(m.compute_dtype in ("float32", "bfloat16", "float16"),
           f"model.compute_dtype '{m.compute_dtype}' is unknown; use float32 or bfloat16.")
  _require(0.0 <= o.causal_fraction <= 1.0,
           "objective.causal_fraction must lie in [0, 1].")
  _require(0.0 <= o.masked_weight <= 1.0, "objective.masked_weight must lie in [0, 1].")
  for name in ("mask_rate_start", "mask_rate_end"):
    _require(0.0 < o[name] < 1.0, f"objective.{name} must lie in (0, 1).")
  _require(o.mask_token_prob + o.random_token_prob <= 1.0,
           "objective.mask_token_prob + objective.random_token_prob must not exceed 1.")
  _require(o.max_span >= 1, "objective.max_span must be at least 1.")

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

  if t.steps is not None:
    _require(t.steps > 0, f"train.steps ({t.steps}) must be positive.")
    total = int(t.steps)
  else:
    _require(t.epochs > 0, "train.epochs must be positive (or set train.steps).")
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
