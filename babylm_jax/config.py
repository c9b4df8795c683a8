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

from babylm_jax.data import curate
from babylm_jax.data import languages as languages_lib
from babylm_jax.errors import ConfigError

NUM_SPECIAL_TOKENS = 16
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<mask>") + tuple(
    f"<special_{i}>" for i in range(11))
UNK_ID, BOS_ID, EOS_ID, PAD_ID, MASK_ID = range(5)
MASKING_STRATEGIES = ("bernoulli", "ranked")  # see data/masking.py
DATA_ORDERS = ("shuffled", "domains", "difficulty")  # see data/order.py

# BabyLM 2025: corpus word budget and the cap on words seen in training (ten epochs).
# BabyLM 2026's multilingual track counts both in English-equivalent words, byte-premium
# adjusted (data/languages.py), over the languages of data.languages.
TRACKS = {
    "strict_small": dict(word_budget=10_000_000, exposure_cap=100_000_000),
    "strict": dict(word_budget=100_000_000, exposure_cap=1_000_000_000),
    "multilingual": dict(word_budget=100_000_000, exposure_cap=1_000_000_000),
}


def word_unit(config) -> str:
  """What every count of words in a run is: the track's unit, for messages and reports."""
  return "English-equivalent words" if config.track == "multilingual" else "words"


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
  # BabyLM track: 'strict_small' (10M words), 'strict' (100M words) or 'multilingual'
  # (BabyLM 2026: 100M English-equivalent words over data.languages; every word count of such
  # a run, budget, words seen, milestones and the ten-epoch cap, is in that unit).
  c.track = "strict_small"
  # Set for runs that knowingly break the track's word budget / exposure cap.
  c.outside_rules = False

  c.data = ml_collections.ConfigDict()
  # Track 'multilingual' only (data/languages.py): one source per language,
  # 'eng=PATH,nld=PATH,zho=PATH' (each a folder, file, glob or 'hf:ORG/NAME' as data.path,
  # which such a run does not read), and the share of the budget each gets: 'equal' (the
  # official *-equal baselines) or 'eng=0.5,nld=0.25,zho=0.25'.
  c.data.languages = ""
  c.data.language_shares = "equal"
  # English-equivalent words of the mixture (0: the track's budget); the shares are taken of
  # the largest total, at most this, that every language's source can supply.
  c.data.language_words = 0
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
  # Words of generated folders in data.path (their generation.json, --mode=generate) count
  # toward the track's word budget (BabyLM's rule); False leaves them out of the count (a run
  # outside the rules unless the generated text is budgeted elsewhere).
  c.data.count_generated = True
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
  # Each step reads a random sample of the epoch's rows (False: consecutive stream rows).
  c.data.shuffle_rows = True
  # The order of the text within each epoch (babylm_jax/data/order.py; README "Data order"):
  # 'shuffled': the documents in a random order, rows read in a random order of the epoch's.
  # 'domains': a curriculum by domain, the domains of data.order_domains one after another
  #   (e.g. child-directed speech first, encyclopedia last); documents and rows shuffled
  #   within a domain; every epoch repeats the sequence.
  # 'difficulty': the documents sorted by their mean unigram surprisal (under the training
  #   store's own token frequencies) and cut into data.order_buckets buckets of about equal
  #   tokens, easiest first; documents and rows shuffled within a bucket; every epoch repeats.
  # (At BabyLM 2023 most curriculum submissions did no better than a shuffled baseline.)
  c.data.order = "shuffled"
  # For order 'domains': every domain of the store (its file stems, e.g.
  # 'childes,bnc_spoken,switchboard,open_subtitles,gutenberg,simple_wiki'), comma separated.
  c.data.order_domains = ""
  # For order 'difficulty': how many buckets (1 is the shuffled order of a sorted store).
  c.data.order_buckets = 4
  # A corpus recipe for --mode=corpus (babylm_jax/data/corpus.py; configs/corpora/ has
  # presets): which sources, how many words of each, and how they are picked. Training does
  # not read this section; it reads the folder the recipe writes, as data.path.
  c.data.corpus = ml_collections.ConfigDict()
  # name -> ConfigDict(path=..., words=N | weight=W, ...): see corpus.SOURCE_FIELDS. The name
  # is the domain (the output file <name>.train) in every report.
  c.data.corpus.sources = ml_collections.ConfigDict()
  # Words shared by the sources that give a weight instead of a word quota (0: none do).
  c.data.corpus.total_words = 0
  # Selection unit: 'document' (as data.clean cuts them) or 'paragraph' (a line of one).
  c.data.corpus.unit = "document"
  # Cut the first unit that does not fit at a word, so that each source gives exactly its
  # quota (False: whole units only, a source may fall short by less than one unit).
  c.data.corpus.cut_last = False
  c.data.corpus.seed = 0
  # Deduplication and filters (babylm_jax/data/curate.py), applied before the selection;
  # every step off by default.
  c.data.corpus.curate = curate.default_config()
  # name -> 'hf:ORG/NAME ...': the Hub sources a user with network access would use instead
  # of the local ones (documentation only; presets fill it).
  c.data.corpus.hub_sources = ml_collections.ConfigDict()

  c.tokenizer = ml_collections.ConfigDict()
  # A tokenizer.json to load; '' trains one on the corpus (vocab size from model.vocab_size).
  c.tokenizer.path = ""
  c.tokenizer.min_frequency = 2
  # Pre-tokenize each CJK character (ideographs, kana) on its own, so that Chinese, written
  # without spaces, is not one byte-level "word" per clause (README "Multilingual track").
  c.tokenizer.split_cjk = False
  # Track 'multilingual': the tokenizer is trained on a sample with these shares of bytes per
  # language ('equal' or 'eng=0.4,nld=0.3,zho=0.3'), as large as the training text allows.
  c.tokenizer.language_shares = "equal"

  c.model = ml_collections.ConfigDict()
  c.model.vocab_size = 8192
  c.model.hidden_size = 384
  c.model.num_layers = 12
  c.model.num_heads = 6
  c.model.intermediate_size = 1280
  c.model.position_bucket_size = 32
  c.model.max_position = 512
  c.model.dropout = 0.1
  # Dropout before the head's vocabulary projection (GPT-BERT's reference code has it).
  c.model.head_dropout = 0.0
  c.model.layer_norm_eps = 1e-5
  # 'disentangled' (GPT-BERT: content and relative-position terms, GELU-gated values), 'ltg'
  # (LTG-BERT, ELC-BERT, BootBERT: the same scores, ungated values, an affine LayerNorm after
  # the output projection) or 'standard' (scaled dot-product attention).
  c.model.attention = "disentangled"
  # 'relative' (bucketed relative positions; disentangled and ltg attention), or for standard
  # attention 'learned_absolute' (a learned vector per position) or 'rotary' (RoPE).
  # Absolute and rotary positions restart at 0 at each document of a packed row.
  c.model.position = "relative"
  # NormFormer's extra LayerNorms before the attention output and the feed-forward down
  # projections (GPT-BERT); False gives plain pre-LN blocks. 'ltg' attention has its own
  # LayerNorm after the output projection instead, so there this switch is the FFN's only.
  c.model.normformer = True
  # 'geglu' (GPT-BERT) or 'gelu' (two-matrix MLP with GELU).
  c.model.ffn = "geglu"
  # 'gpt_bert' (weighted sum of all earlier sublayer outputs), 'elc' (ELC-BERT: each layer's
  # input a softmax mix of earlier layers' outputs, no residual around the attention, the
  # last layer's output read), 'elc_weighted_output' (ELC-BERT's ablation of that name) or
  # 'residual' (plain residual stream). See model/layer_weighting.py.
  c.model.layer_weighting = "gpt_bert"
  # BootBERT's shallow decoder (objective.kind 'bootstrap' only): layers without dropout that
  # fill the <mask> holes, which the encoder does not see, from the encoder's states plus a
  # learned mask embedding. 0: no decoder.
  c.model.decoder_layers = 0
  # BootBERT's affine LayerNorm (learned scale and bias) at the end of the encoder and of the
  # decoder; the LM head then drops its own first LayerNorm.
  c.model.final_norm = False
  # Which initial weights shrink with depth, by sqrt(1 / (2 (layer + 1))): 'gpt_bert' (both
  # feed-forward kernels; GPT-BERT, LTG-BERT) or 'boot_bert' (the feed-forward's down kernel
  # and the attention's output LayerNorm gain, where the attention has one).
  c.model.depth_scaling = "gpt_bert"
  c.model.compute_dtype = "float32"

  c.objective = ml_collections.ConfigDict()
  # What is predicted (babylm_jax/train/objectives/): 'hybrid' (GPT-BERT: masked-next-token
  # rows and causal rows), 'masked' (BERT-style: a masked token is predicted at its own
  # position; LTG-BERT, ELC-BERT, RoBERTa), 'causal' (next-token prediction only, GPT) or
  # 'bootstrap' (BootBERT's latent bootstrapping; needs model.decoder_layers).
  c.objective.kind = "hybrid"
  c.objective.causal_fraction = 1 / 16  # hybrid: fraction of rows that are causal (15:1)
  c.objective.masked_weight = 15 / 16  # hybrid: r in r*masked + (1-r)*causal
  c.objective.mask_rate_start = 0.30
  c.objective.mask_rate_end = 0.15
  # Which tokens a masked row predicts (data/masking.py): 'bernoulli' (span starts drawn
  # independently, the masked fraction varies around the rate) or 'ranked' (GPT-BERT's
  # reference: consecutive spans, the lowest-ranked k = int(n * rate + U) of each segment).
  c.objective.masking = "bernoulli"
  # With 'ranked' masking: tokens masked in earlier epochs rank later (key x e^count), so they
  # are less likely to be masked again (GPT-BERT's reference).
  c.objective.anti_repeat = False
  c.objective.max_span = 3
  c.objective.mask_token_prob = 0.8
  c.objective.random_token_prob = 0.1
  c.objective.z_loss = 1e-4
  # How the z-loss averages logsumexp^2: 'targets' (over all targets of the batch alike) or
  # 'by_kind' (r x the masked targets' mean + (1 - r) x the causal targets' mean, r =
  # masked_weight: the GPT-BERT reference pools it like the cross-entropy).
  c.objective.z_loss_pooling = "targets"
  # Latent bootstrapping (objective.kind 'bootstrap', BootBERT).
  c.objective.bootstrap = ml_collections.ConfigDict()
  c.objective.bootstrap.mlm_weight = 0.1  # loss = mlm_weight x masked CE + smooth-L1 latent
  # The teacher (an EMA of the encoder) decay, linear in the step from start to end.
  c.objective.bootstrap.teacher_decay_start = 0.996
  c.objective.bootstrap.teacher_decay_end = 1.0
  # Distillation from finished runs (Baby Llama, Timiryasov & Tastet 2023; train/distill.py):
  # loss = alpha x the objective's cross-entropy + (1 - alpha) x T^2 x KL(teacher_T || student_T)
  # at the objective's targets, + the z-loss. '' trains without teachers.
  c.objective.distill = ml_collections.ConfigDict()
  c.objective.distill.teachers = ""  # comma list of workdirs of finished runs (same tokenizer)
  c.objective.distill.temperature = 2.0
  c.objective.distill.alpha = 0.5
  # How the teachers' distributions are combined: 'probs' (mean of the probabilities, Baby
  # Llama) or 'logits' (the softmax of the mean logits).
  c.objective.distill.ensemble = "probs"

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 10.0
  c.train.steps = config_dict.placeholder(int)  # overrides the recipe's step count
  # Stop (with a checkpoint) after this step without changing the schedules: a run in stages.
  c.train.stop_after = config_dict.placeholder(int)
  c.train.tokens_per_step = 16_384
  c.train.seq_lens = (128, 256, 512)
  c.train.seq_len_fractions = (0.6, 0.2, 0.2)
  # Batch-size ramp: tokens per step rise linearly from batch_ramp_start x tokens_per_step at
  # step 0 to tokens_per_step at batch_ramp_fraction of the steps, as a staircase of
  # batch_ramp_levels values (each level and length is one compiled shape). 1.0: no ramp.
  c.train.batch_ramp_start = 1.0
  c.train.batch_ramp_fraction = 1.0
  c.train.batch_ramp_levels = 4
  # 'adamw', 'lamb' (optax's: trust ratio on every parameter) or 'gpt_bert_lamb' (GPT-BERT's
  # reference LAMB: no decay and no trust ratio for biases and norms; train/optimizer.py).
  # Every recipe in configs/ sets its own: strict_small and strict train gpt_bert_lamb at the
  # reference's rates; at the CPU proxy's size AdamW did best near 2e-3 and 7e-3 was too high
  # (configs/sweeps/learning_rate.py, README "Learning rate").
  c.train.optimizer = "adamw"
  # gpt_bert_lamb only: parameters whose '/'-joined path (e.g. 'attention/0/qk/bias',
  # 'embedding/relative') holds one of these fragments take a plain Adam step, no weight decay
  # and no trust ratio (the reference codes' `no_decay` lists). ('bias', 'norm'): GPT-BERT's;
  # LTG-BERT adds 'embedding', ELC-BERT also 'layer_weight'.
  c.train.no_decay = ("bias", "norm")
  c.train.lr = 7e-3
  c.train.b1 = 0.9
  c.train.b2 = 0.98
  c.train.eps = 1e-8
  c.train.weight_decay = 0.1
  # When set, weight decay follows a cosine from train.weight_decay (step 0) to this value
  # (the last step), as BootBERT raises it from 0.02 to 0.2.
  c.train.weight_decay_end = config_dict.placeholder(float)
  c.train.grad_clip = 2.0
  c.train.warmup_fraction = 0.016
  c.train.cooldown_fraction = 0.016
  c.train.min_lr_ratio = 0.1
  c.train.ema_decay = 0.999
  # Warm the EMA decay up as min(ema_decay, (1 + step) / (10 + step)) (see optimizer.py).
  c.train.ema_warmup = True
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
  # Start over: move the workdir's checkpoints, milestones and metrics into
  # discarded/<time>/ and train from step 0 (never needed to resume).
  c.checkpoint.restart = False

  c.eval = ml_collections.ConfigDict()
  # A comma list of tasks (blimp, blimp_fast, supplement, ewok, entity_tracking, wug_adj,
  # wug_past, comps, reading, zhoblimp, blimp_nl, multiblimp_eng, multiblimp_nld, xcomps_nl,
  # xcomps_zh) or one preset: 'babylm' (the official full zero-shot set), 'babylm_fast' (the
  # fast set) or 'babylm_multilingual' (the 2026 multilingual track's zeroshot_{eng,nld,zho},
  # each task from eval.data.<task>). A preset reads the official layout under eval.data_root and
  # lists a task whose folder is absent as missing; a task named on its own reads
  # eval.data.<task>.
  c.eval.suites = "blimp"
  # The official pipeline's `evaluation_data` folder: full_eval/blimp_filtered, ...,
  # fast_eval/blimp_fast, ... (the folder names of its eval_zero_shot*.sh; see eval/layout.py).
  c.eval.data_root = repo_path("../shared/data/babylm_eval")
  c.eval.backend = "causal,mntp"
  c.eval.step = config_dict.placeholder(int)
  # A milestone by words seen, or 'all': every milestone, with learning curves.
  c.eval.words = config_dict.placeholder(object)
  c.eval.use_ema = True
  c.eval.batch_size = 64
  # Padded tokens per scoring batch; rows = tokens_per_batch // bucket length.
  c.eval.tokens_per_batch = 1024
  # Score about this many items per suite (the same number from each paradigm, a fixed draw),
  # as the learning curves do; unset: whole suites.
  c.eval.max_items = config_dict.placeholder(int)
  # Each task's folder when it is named on its own (not through a preset).
  c.eval.data = ml_collections.ConfigDict()
  c.eval.data.blimp = repo_path("../shared/data/blimp")
  c.eval.data.blimp_fast = repo_path("../shared/data/babylm_eval/fast_eval/blimp_fast")
  c.eval.data.supplement = repo_path("../shared/data/babylm_eval/fast_eval/supplement_fast")
  c.eval.data.ewok = repo_path("../shared/data/babylm_eval/fast_eval/ewok_fast")
  c.eval.data.entity_tracking = repo_path("../shared/data/babylm_eval/entity_tracking")
  c.eval.data.wug_adj = repo_path("../shared/data/babylm_eval/wug_adj_nominalization")
  c.eval.data.wug_past = repo_path("../shared/data/babylm_eval/wug_past_tense")
  c.eval.data.comps = repo_path("../shared/data/babylm_eval/comps")
  c.eval.data.reading = repo_path("../shared/data/babylm_eval/reading")  # holds reading_data.csv
  # The 2026 multilingual track (preset 'babylm_multilingual', eval/multilingual.py; English
  # BLiMP is eval.data.blimp, the original 67 x 1,000 pairs lm-eval reads). Only ZhoBLiMP is
  # in ../shared/data; the others are on the Hub (jumelet/multiblimp, juletxara/blimp-nl,
  # fpadovani/xcomps-dataset): put each as .jsonl files in its folder.
  c.eval.data.zhoblimp = repo_path("../shared/data/multilingual/zhoblimp")
  c.eval.data.blimp_nl = repo_path("../shared/data/multilingual/blimp_nl")
  c.eval.data.multiblimp_eng = repo_path("../shared/data/multilingual/multiblimp/eng")
  c.eval.data.multiblimp_nld = repo_path("../shared/data/multilingual/multiblimp/nld")
  c.eval.data.xcomps_nl = repo_path("../shared/data/multilingual/xcomps/nl")
  c.eval.data.xcomps_zh = repo_path("../shared/data/multilingual/xcomps/zh")
  # Age of acquisition (eval/aoa.py): the CDI words and contexts file (not in ../shared/data;
  # BabyLM's evaluation_data, https://osf.io/ryjfm/); every milestone of the run is read.
  c.eval.data.aoa = repo_path("../shared/data/babylm_eval/cdi_childes/cdi_childes.json")
  # The children's AoA (cdi_human.csv) for the score; '' looks beside eval.data.aoa and in
  # ../aoa/ (the pipeline's full_eval layout).
  c.eval.aoa_human = ""
  # Reading task, words of several tokens: 'official' scores them as the BabyLM 2025 pipeline
  # does (later tokens re-encoded alone; its leaderboard numbers), 'exact' the word's tokens.
  c.eval.reading_subwords = "official"

  c.finetune = ml_collections.ConfigDict()
  # A task, a comma list, or 'all' (every (Super)GLUE task with train and valid files in
  # data_dir); the multilingual track's sib200_en, sib200_nl, sib200_zh are named.
  c.finetune.task = "rte"
  # 'full' (the official BabyLM recipe) or 'warp' (WARP prompt tuning of the frozen model).
  c.finetune.method = "full"
  c.finetune.data_dir = repo_path("../shared/data/babylm_eval/glue_filtered")
  # Unset: the method's value. full: the official per-task value (batch 16 for boolq/multirc,
  # else 32; 30 epochs for wsc, else 10) and lr 3e-5; warp: finetune.warp's.
  c.finetune.lr = config_dict.placeholder(float)
  c.finetune.batch_size = config_dict.placeholder(int)
  c.finetune.epochs = config_dict.placeholder(int)
  c.finetune.seed = 42
  c.finetune.max_length = 512
  # full fine-tuning's optimizer and schedule (WARP's are in finetune.warp).
  c.finetune.weight_decay = 0.01
  c.finetune.warmup_fraction = 0.06
  c.finetune.min_lr_ratio = 0.1
  c.finetune.classifier_dropout = 0.1
  # WARP as the reference (YerevaNN/WARP) trains it on GLUE: its README's WARP command over
  # configs/warp.jsonnet's defaults (see eval/warp.py and eval/finetune.py).
  c.finetune.warp = ml_collections.ConfigDict()
  c.finetune.warp.prompts_per_gap = 5  # four groups around a, <mask>, b: WARP-20
  c.finetune.warp.prompt_init = "mask"  # 'mask' (every prompt = <mask>'s embedding), 'normal'
  c.finetune.warp.verbalizer_init = "random"  # 'random' (PyTorch Linear), 'words' (WARP_init)
  c.finetune.warp.lr = 1e-3
  c.finetune.warp.batch_size = 8
  c.finetune.warp.epochs = 30
  c.finetune.warp.weight_decay = 0.0
  c.finetune.warp.grad_norm = 1.0  # clip the global gradient norm; 0: no clipping
  # Slanted triangular: up from min_lr_ratio x lr to lr over warmup_fraction of the steps,
  # then linearly down to min_lr_ratio x lr (AllenNLP's cut_frac 0.06, ratio 32).
  c.finetune.warp.warmup_fraction = 0.06
  c.finetune.warp.min_lr_ratio = 1 / 32
  # The 2026 multilingual track's tasks (sib200_en, sib200_nl, sib200_zh; finetune.data_dir
  # must hold their <task>.{train,valid}.jsonl, e.g. ../shared/data/multilingual/sib200):
  # babylm-org/babylm-eval multilingual/scripts/finetune_model.sh's values. finetune.lr,
  # batch_size and epochs override the first three when set.
  c.finetune.multilingual = ml_collections.ConfigDict()
  c.finetune.multilingual.lr = 5e-5
  c.finetune.multilingual.batch_size = 64
  c.finetune.multilingual.epochs = 10
  c.finetune.multilingual.patience = 3
  c.finetune.multilingual.seed = 12
  c.finetune.multilingual.max_length = 128
  c.finetune.eval_batch_size = 64
  c.finetune.max_train_examples = config_dict.placeholder(int)
  c.finetune.max_valid_examples = config_dict.placeholder(int)
  # The official results layout: <results_dir>/<model_name>/<revision>/finetune/<task>/;
  # '' means workdir/results and the workdir's name (WARP adds '-warp').
  c.finetune.results_dir = ""
  c.finetune.model_name = ""

  c.export = ml_collections.ConfigDict()
  c.export.dir = ""
  c.export.step = config_dict.placeholder(int)
  c.export.words = config_dict.placeholder(int)
  c.export.milestones = False  # also export every milestone as a sub-folder
  c.export.use_ema = True
  c.export.overwrite = False

  # --mode=submit (export/submit.py): the export, with every milestone, and the official
  # results layout in one folder; '' means workdir/submission. The submitted checkpoint and
  # its weights are export.step / export.words / export.use_ema's; the model's name is
  # finetune.model_name's; the data is eval.data_root's (full_eval/, fast_eval/).
  c.submit = ml_collections.ConfigDict()
  c.submit.dir = ""
  c.submit.overwrite = False
  # --mode=generate (babylm_jax/generate.py): text sampled from a trained causal or hybrid run,
  # written as a domain folder (synthetic.train + generation.json) another run can train on.
  c.generate = ml_collections.ConfigDict()
  c.generate.out = ""  # the folder to write; '' means workdir/generated
  c.generate.prompts = ""  # a text file, one prompt a line; '' = openings of corpus documents
  c.generate.corpus_prompts = 64  # with no prompts file: this many documents of the token store
  c.generate.prompt_tokens = 16  # ... each opened by its first this many tokens
  c.generate.max_new_tokens = 128
  c.generate.temperature = 1.0  # 0: greedy
  c.generate.top_k = 0  # 0: no top-k cut
  c.generate.top_p = 1.0  # 1: no nucleus cut
  c.generate.seed = 0
  c.generate.batch_size = 16  # prompts decoded together
  c.generate.step = config_dict.placeholder(int)  # checkpoint: as eval.step / eval.words
  c.generate.words = config_dict.placeholder(int)
  c.generate.use_ema = True
  c.generate.overwrite = False

  c.init = ml_collections.ConfigDict()
  c.init.from_hf = ""  # an exported folder to start from
  return c


# ---------------------------------------------------------------------------------------
# Derived quantities.


@dataclasses.dataclass(frozen=True)
class Phase:
  """A span of steps [start, end) of one batch shape: batch_rows rows of seq_len tokens."""
  start: int
  end: int
  seq_len: int
  batch_rows: int

  @property
  def tokens_per_step(self) -> int:
    return self.batch_rows * self.seq_len


@dataclasses.dataclass(frozen=True)
class Derived:
  total_steps: int
  warmup_steps: int
  cooldown_steps: int
  tokens_per_step: int  # the full value; a batch-size ramp starts below it
  phases: tuple[Phase, ...]  # consecutive, one per (length, ramp level)
  word_budget: int
  exposure_cap: int
  corpus_tokens: int | None
  corpus_words: int | None

  def phase_at(self, step: int) -> Phase:
    for p in self.phases:
      if step < p.end:
        return p
    return self.phases[-1]

  def tokens_before(self, step: int) -> int:
    """Tokens (rows x length) of the batches of steps [0, step): the one place that knows
    how tokens per step change along the run."""
    return _tokens_before(self.phases, step)

  @property
  def max_seq_len(self) -> int:
    return max(p.seq_len for p in self.phases)

  @property
  def planned_words(self) -> int | None:
    """Words the run will see: its tokens / (corpus tokens per word)."""
    if not self.corpus_tokens or not self.corpus_words:
      return None
    return round(self.tokens_before(self.total_steps) * self.corpus_words / self.corpus_tokens)


def _tokens_before(phases, step: int) -> int:
  return sum(min(max(step - p.start, 0), p.end - p.start) * p.tokens_per_step for p in phases)


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


# Architecture switches added after the first checkpoints and exports were written: one that
# does not record them holds the network there was then, these fields' defaults.
LATER_MODEL_FIELDS = ("attention", "position", "normformer", "ffn", "decoder_layers",
                      "final_norm")

# model.layer_weighting values (babylm_jax/model/layer_weighting.py holds one stack each).
LAYER_WEIGHTINGS = ("gpt_bert", "elc", "elc_weighted_output", "residual")

# objective.kind values (babylm_jax/train/objectives/ holds one module each).
OBJECTIVES = ("hybrid", "masked", "causal", "bootstrap")

# model.attention -> the model.position values it works with.
POSITIONS_OF_ATTENTION = {"disentangled": ("relative",), "ltg": ("relative",),
                          "standard": ("learned_absolute", "rotary")}


def _check_architecture(m):
  """The transformer switches: known values, and combinations that exist."""
  _require(m.attention in POSITIONS_OF_ATTENTION,
           f"model.attention '{m.attention}' is unknown; use disentangled, ltg or standard.")
  positions = POSITIONS_OF_ATTENTION[m.attention]
  _require(m.position in ("relative", "learned_absolute", "rotary"),
           f"model.position '{m.position}' is unknown; use relative, learned_absolute or "
           f"rotary.")
  _require(m.position in positions,
           f"model.position '{m.position}' does not work with model.attention "
           f"'{m.attention}'; use {' or '.join(positions)}, or change model.attention.")
  _require(m.position != "rotary" or (m.hidden_size // m.num_heads) % 2 == 0,
           f"model.position 'rotary' needs an even head size, not {m.hidden_size} / "
           f"{m.num_heads}; change model.hidden_size or model.num_heads.")
  _require(m.ffn in ("geglu", "gelu"), f"model.ffn '{m.ffn}' is unknown; use geglu or gelu.")
  _require(m.depth_scaling in ("gpt_bert", "boot_bert"),
           f"model.depth_scaling '{m.depth_scaling}' is unknown; use gpt_bert or boot_bert.")
  _require(isinstance(m.final_norm, bool),
           f"model.final_norm ({m.final_norm!r}) must be True or False.")
  _require(0.0 <= m.head_dropout < 1.0,
           f"model.head_dropout ({m.head_dropout}) must lie in [0, 1).")


def _check_objective_kind(o, m, t):
  """objective.kind and the fields that only some objectives read."""
  _require(o.kind in OBJECTIVES,
           f"objective.kind '{o.kind}' is unknown; use {', '.join(OBJECTIVES)}.")
  _require(o.z_loss_pooling in ("targets", "by_kind"),
           f"objective.z_loss_pooling '{o.z_loss_pooling}' is unknown; use targets or by_kind.")
  if o.kind == "bootstrap":
    _require(m.decoder_layers >= 1,
             "objective.kind 'bootstrap' needs BootBERT's decoder; set "
             "--config.model.decoder_layers (the paper uses 4).")
    _require(m.position != "learned_absolute",
             "objective.kind 'bootstrap' reads positions inside the attention (the decoder's "
             "<mask> holes carry none of their own); use model.position relative or rotary.")
    b = o.bootstrap
    _require(0.0 <= b.teacher_decay_start <= 1.0 and 0.0 <= b.teacher_decay_end <= 1.0,
             "objective.bootstrap.teacher_decay_start and _end must lie in [0, 1].")
    _require(b.mlm_weight >= 0.0, "objective.bootstrap.mlm_weight must not be negative.")
  else:
    _require(m.decoder_layers == 0,
             f"model.decoder_layers ({m.decoder_layers}) is only read by objective.kind "
             f"'bootstrap'; set it to 0 or use that objective.")
  _require(t.weight_decay_end is None or t.weight_decay_end >= 0.0,
           "train.weight_decay_end must not be negative.")


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
  _check_data_order(c.data)
  langs = languages_lib.languages(c)
  if langs:
    languages_lib.tokenizer_shares(c, [lang.code for lang in langs])
  _positive(c, "data.language_words", zero=True)


def order_domains(data) -> list[str]:
  """data.order_domains as a list of names (blanks around commas ignored)."""
  return [name.strip() for name in str(data.order_domains).split(",") if name.strip()]


def _check_data_order(d):
  _require(d.order in DATA_ORDERS,
           f"data.order '{d.order}' is unknown; use one of {', '.join(DATA_ORDERS)}.")
  if d.order == "domains":
    names = order_domains(d)
    _require(bool(names), "data.order 'domains' needs data.order_domains, the store's domains "
                          "in the order to read them, comma separated (e.g. "
                          "'childes,bnc_spoken,simple_wiki').")
    twice = sorted({n for n in names if names.count(n) > 1})
    _require(not twice, f"data.order_domains names {', '.join(twice)} more than once; name "
                        f"each domain once.")
  if d.order == "difficulty":
    _require(isinstance(d.order_buckets, int) and d.order_buckets >= 1,
             f"data.order_buckets ({d.order_buckets}) must be a whole number of at least 1.")


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
  _require(m.layer_weighting in LAYER_WEIGHTINGS,
           f"model.layer_weighting '{m.layer_weighting}' is unknown; use "
           f"{', '.join(LAYER_WEIGHTINGS)}.")
  _check_architecture(m)
  _require(m.compute_dtype in ("float32", "bfloat16", "float16"),
           f"model.compute_dtype '{m.compute_dtype}' is unknown; use float32 or bfloat16.")


def _check_objective(c):
  o = c.objective
  _check_objective_kind(o, c.model, c.train)
  _require(0.0 <= o.causal_fraction <= 1.0,
           "objective.causal_fraction must lie in [0, 1].")
  _require(0.0 <= o.masked_weight <= 1.0, "objective.masked_weight must lie in [0, 1].")
  for name in ("mask_rate_start", "mask_rate_end"):
    _require(0.0 < o[name] < 1.0, f"objective.{name} must lie in (0, 1).")
  _require(o.mask_token_prob >= 0 and o.random_token_prob >= 0
           and o.mask_token_prob + o.random_token_prob <= 1.0,
           "objective.mask_token_prob + objective.random_token_prob must not exceed 1.")
  _require(o.max_span >= 1, "objective.max_span must be at least 1.")
  _require(o.masking in MASKING_STRATEGIES,
           f"objective.masking '{o.masking}' is unknown; use one of {MASKING_STRATEGIES}.")
  _require(not o.anti_repeat or o.masking == "ranked",
           "objective.anti_repeat needs objective.masking='ranked' (it reorders ranked spans).")
  _positive(c, "objective.z_loss", zero=True)
  d = o.distill
  _require(d.ensemble in ("probs", "logits"),
           f"objective.distill.ensemble '{d.ensemble}' is unknown; use probs or logits.")
  _require(d.temperature > 0, "objective.distill.temperature must be positive.")
  _require(0.0 <= d.alpha <= 1.0, "objective.distill.alpha must lie in [0, 1].")
  _require(not d.teachers.strip() or o.kind in ("causal", "hybrid", "masked"),
           f"objective.distill.teachers needs a causal, hybrid or masked student; objective.kind "
           f"'{o.kind}' is not supported.")


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
  _require(t.optimizer in ("adamw", "lamb", "gpt_bert_lamb"),
           f"train.optimizer '{t.optimizer}' is unknown; use adamw, lamb or gpt_bert_lamb.")
  no_decay = t.no_decay
  _require(isinstance(no_decay, (tuple, list)) and all(isinstance(f, str) and f
                                                       for f in no_decay),
           f"train.no_decay {no_decay} must be a tuple of non-empty name fragments, e.g. "
           f"('bias', 'norm').")
  _require(t.optimizer == "gpt_bert_lamb" or tuple(no_decay) == ("bias", "norm"),
           f"train.no_decay is read by train.optimizer 'gpt_bert_lamb' only ('{t.optimizer}' "
           f"has its own decay mask); leave it at ('bias', 'norm') or use gpt_bert_lamb.")
  _require(0.0 < t.batch_ramp_start <= 1.0 and 0.0 < t.batch_ramp_fraction <= 1.0,
           "train.batch_ramp_start and train.batch_ramp_fraction must lie in (0, 1].")
  _require(t.batch_ramp_levels >= 2, "train.batch_ramp_levels must be at least 2.")
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
  for path in ("eval.batch_size", "eval.tokens_per_batch", "finetune.max_length",
               "finetune.eval_batch_size"):
    _positive(c, path)
  for path in ("finetune.lr", "finetune.batch_size", "eval.max_items"):
    _positive(c, path, allow_none=True)
  for path in ("eval.step", "export.step", "export.words"):
    _positive(c, path, allow_none=True, zero=True)
  if c.eval.words != "all":  # 'all': every milestone
    _require(c.eval.words is None or isinstance(c.eval.words, int),
             f"eval.words '{c.eval.words}' is neither a number of words nor 'all'.")
    _positive(c, "eval.words", allow_none=True, zero=True)
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

  def layout(total: int) -> tuple[Phase, ...]:
    return _phases(t, total, seq_lens, fracs)

  if t.steps is not None:
    total = int(t.steps)
  else:
    tokens = corpus_tokens
    if tokens is None:
      tokens = word_budget * config.data.tokens_per_word_estimate
    # The fewest steps whose batches hold epochs x the corpus tokens (a bisection, which a
    # batch-size ramp needs: its phases depend on the step count).
    target = t.epochs * tokens
    lo = max(1, math.ceil(target / t.tokens_per_step))
    hi = max(lo, math.ceil(target / min(_ramp_tokens(t, seq_lens))))
    while lo < hi:
      mid = (lo + hi) // 2
      lo, hi = (mid + 1, hi) if _tokens_before(layout(mid), mid) < target else (lo, mid)
    total = lo
  phases = layout(total)

  warmup = round(t.warmup_fraction * total)
  cooldown = round(t.cooldown_fraction * total)
  return Derived(total_steps=total, warmup_steps=warmup, cooldown_steps=cooldown,
                 tokens_per_step=t.tokens_per_step, phases=phases,
                 word_budget=word_budget, exposure_cap=exposure_cap,
                 corpus_tokens=corpus_tokens, corpus_words=corpus_words)


def _ramp_tokens(t, seq_lens) -> list[int]:
  """Tokens per step of each ramp level, rising linearly from batch_ramp_start x the full
  value to the full value, in whole rows at every length (and micro-batch)."""
  if t.batch_ramp_start >= 1.0:
    return [t.tokens_per_step]
  unit = math.lcm(*seq_lens) * t.micro_batches
  n = t.batch_ramp_levels
  out = []
  for i in range(n - 1):
    f = t.batch_ramp_start + (1.0 - t.batch_ramp_start) * i / (n - 1)
    out.append(max(unit, round(t.tokens_per_step * f / unit) * unit))
  return out + [t.tokens_per_step]


def _phases(t, total: int, seq_lens, fracs) -> tuple[Phase, ...]:
  """Consecutive spans of one (length, ramp level): length phases at the rounded cumulative
  fractions of the steps, ramp level i from round(i / levels x ramp_fraction x total)."""
  cuts = [round(sum(fracs[:i + 1]) * total) for i in range(len(fracs))]
  cuts[-1] = total
  levels = _ramp_tokens(t, seq_lens)
  ramp_cuts = [round(i / len(levels) * t.batch_ramp_fraction * total)
               for i in range(1, len(levels))]
  bounds = sorted({0, total, *[min(c, total) for c in cuts + ramp_cuts]})
  phases = []
  for a, b in zip(bounds, bounds[1:]):
    T = seq_lens[next(i for i, c in enumerate(cuts) if a < c)]
    tokens = levels[sum(a >= c for c in ramp_cuts)]
    if phases and (phases[-1].seq_len, phases[-1].tokens_per_step) == (T, tokens):
      phases[-1] = dataclasses.replace(phases[-1], end=b)
    else:
      phases.append(Phase(a, b, T, tokens // T))
  return tuple(phases)


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


# Sections whose keys a recipe names (corpus sources by domain): a run's config.json may hold
# keys there that base_config() has not.
OPEN_SECTIONS = ("data.corpus.sources.", "data.corpus.hub_sources.")


def _fill(config, values: dict, where: str, prefix: str = ""):
  for key, value in values.items():
    name = prefix + key
    if key not in config and prefix.startswith(OPEN_SECTIONS):
      config[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
      continue
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
