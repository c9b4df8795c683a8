"""The CPU proxy track: a model that clearly learns within an hour on a 2-core CPU (issue 13).

  python benchmarks/cpu_proxy.py --workdir runs/cpu_proxy      # prepare, train, eval, timed
  python launch.py --config configs/cpu_proxy.py --workdir runs/cpu_proxy   # training alone

Data: ../shared/data/babylm_text/train_600k (3.45M words of real BabyLM text; the
strict-small track's rules, at most 10 epochs). The network is GPT-BERT's (disentangled
attention with relative positions, GEGLU, NormFormer LayerNorms) at 4 layers x 256 with a
vocabulary of 8192 (5,601,792 parameters), trained with the causal objective: within an hour on
this CPU the causal rows are what moved BLiMP (every position predicts its next token), while
the hybrid run that issue 13 calibrates with (15 masked : 1 causal rows, AdamW at 7e-3, 800
steps) stayed at 52.1 on blimp_fast. Plain residual stream, no dropout (the model sees each
token under two times), AdamW at 2e-3 (7e-3 is the LAMB recipe's rate), 5% warmup and
cooldown, 8,192 tokens a step at length 128, shuffled rows, the EMA's decay warmed up so that
it fits the run's length.

What was tried and measured is in README.md, "The CPU proxy track"; configs/sweeps/ turns this
recipe back into GPT-BERT (hybrid objective) to answer the seed's questions.
"""

from babylm_jax.config import base_config, repo_path


def get_config():
  c = base_config()
  c.data.path = repo_path("../shared/data/babylm_text/train_600k")
  c.model.vocab_size = 8192
  c.model.hidden_size = 256
  c.model.num_layers = 4
  c.model.num_heads = 4
  c.model.intermediate_size = 683
  c.model.dropout = 0.0
  c.model.layer_weighting = "residual"
  c.objective.kind = "causal"
  c.train.tokens_per_step = 8192
  c.train.seq_lens = (128,)
  c.train.seq_len_fractions = (1.0,)
  c.train.steps = 850
  c.train.optimizer = "adamw"
  c.train.lr = 2e-3
  c.train.warmup_fraction = 0.05
  c.train.cooldown_fraction = 0.05
  c.train.log_every = 50
  c.train.eval_every = 250
  c.checkpoint.every = 250
  # Learning curves at the BabyLM milestones (every 1M words: 0, 1M, ... 4M and the end),
  # on a fixed 2,000-item subset of each suite; their cost is in the benchmark's last line.
  c.train.eval_suites = "blimp_fast,supplement,ewok"
  c.eval.suites = "blimp_fast,supplement,ewok"
  c.eval.backend = "causal"
  return c
