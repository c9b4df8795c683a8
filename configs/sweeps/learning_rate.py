"""Peak learning rate for AdamW and for GPT-BERT's LAMB, at the CPU proxy's size (issue 13).

  python launch.py --mode=sweep --config configs/sweeps/learning_rate.py \
    --workdir runs/learning_rate [--config.sweep.only=NAME]

Why: the GPU recipes (configs/strict_small.py, configs/strict.py) had AdamW at 7e-3, the peak
lr of GPT-BERT's *LAMB* recipe; LAMB scales each tensor's step by its trust ratio and AdamW
does not, so the same number means a much larger step. This sweep trains the seed-questions
sweep's reference, GPT-BERT (hybrid rows 15 masked : 1 causal, GPT-BERT's layer weighting,
shuffled rows) at the proxy's size (4 x 256, vocabulary 8,192), for a quarter of the proxy's
budget (212 steps of 8,192 tokens, about 1.1M words, 15 minutes a variant on the 2-core
machine), and changes only the optimizer and its peak lr: AdamW at 1e-3 ... 7e-3 against
`gpt_bert_lamb` at 7e-3 and at the reference's 10M-word rate 1.41e-2.

The first variant is exactly seed_questions' `gpt_bert` (AdamW at 2e-3, the same overrides,
the same evaluation), so a finished `runs/seed_questions/gpt_bert` may be copied to
`runs/learning_rate/adamw_2e-3` instead of trained again: the sweep checks that its settings
are the same before it reuses a folder.
"""

from babylm_jax.sweep.spec import sweep_config

from configs.sweeps import seed_questions


def get_config():
  ref = seed_questions.get_config().sweep
  gpt_bert = dict(ref.variants[0]["overrides"])  # the reference's own: both readings
  adamw = [(f"adamw_{name}", {"train.optimizer": "adamw", "train.lr": float(name)})
           for name in ("2e-3", "1e-3", "4e-3", "7e-3")]
  adamw[0][1].update(gpt_bert)
  lamb = [(f"lamb_{name}", {"train.optimizer": "gpt_bert_lamb", "train.lr": float(name)})
          for name in ("7e-3", "1.41e-2")]
  return sweep_config(base=ref.base, budget=ref.budget, overrides=dict(ref.overrides),
                      variants=adamw + lamb)
