"""Peak learning rate for AdamW and for GPT-BERT's LAMB, at the CPU proxy's size (issue 13).

  python launch.py --mode=sweep --config configs/sweeps/learning_rate.py \
    --workdir runs/learning_rate [--config.sweep.only=NAME]

Why: the GPU recipes (configs/strict_small.py, configs/strict.py) had AdamW at 7e-3, the peak
lr of GPT-BERT's *LAMB* recipe; LAMB scales each tensor's step by its trust ratio and AdamW
does not, so the same number means a much larger step. This sweep trains GPT-BERT as the GPU
recipes do (hybrid rows 15 masked : 1 causal, GPT-BERT's layer weighting, dropout 0.1, shuffled
rows) at the proxy's size (4 x 256, vocabulary 8,192) for a quarter of the proxy's budget
(212 steps of 8,192 tokens, about 1.1M words; about 13 minutes a variant on the 2-core
machine), and compares the final validation loss (masked and causal) and blimp_fast.
AdamW at 1e-3 ... 7e-3 against `gpt_bert_lamb` at 7e-3 ... 2.8e-2 (the reference's 10M-word
rate is 1.41e-2). The result and the defaults it set are in README.md ("Learning rate").
"""

from babylm_jax.sweep.spec import sweep_config


def get_config():
  # The first (AdamW at the proxy's 2e-3) is the reference of the table.
  adamw = [(f"adamw_{name}", {"train.optimizer": "adamw", "train.lr": float(name)})
           for name in ("2e-3", "1e-3", "4e-3", "7e-3")]
  lamb = [(f"lamb_{name}", {"train.optimizer": "gpt_bert_lamb", "train.lr": float(name)})
          for name in ("7e-3", "1.4e-2", "2.8e-2")]
  return sweep_config(
      base="configs/cpu_proxy.py",
      budget=0.25,
      overrides={
          "objective.kind": "hybrid",
          "objective.causal_fraction": 1 / 16,
          "objective.masked_weight": 15 / 16,
          "model.layer_weighting": "gpt_bert",
          "model.dropout": 0.1,
          # A cheap learning curve; the table's figures are the last validation losses and
          # the whole blimp_fast.
          "train.eval_suites": "blimp_fast",
          "train.eval_suites_every_words": 500_000,
          "train.eval_suites_max_items": 2000,
          "eval.suites": "blimp_fast",
          "eval.backend": "causal",
      },
      variants=adamw + lamb,
  )
