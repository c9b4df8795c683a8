"""The seed's questions as one sweep, at a quarter of the CPU proxy track's budget (issue 13).

  python launch.py --mode=sweep --config configs/sweeps/seed_questions.py \
    --workdir runs/seed_questions [--config.sweep.only=NAME] [--config.sweep.base=FILE]

About 15 minutes of training per variant on the 2-core machine, so that the sweep fits in
one working session; a killed sweep resumes where it stopped when run again. The first
variant is the reference of the table; it is trained twice (seeds 0 and 1) to measure the
run-to-run noise that every other difference must beat.

  GPT-BERT's claim   hybrid masked + causal objective against causal-only and masked-only
  DeBERTa's          disentangled attention (relative positions) against standard attention
                     with rotary positions
  ELC-BERT's         GPT-BERT's layer weighting against ELC's and a plain residual stream
  NormFormer's       the extra LayerNorms on and off
  BootBERT's         latent bootstrapping against masked-only: BootBERT's network as its
                     code builds it (LTG-BERT's attention, final LayerNorms, its depth
                     scaling, a plain residual stream; a 2-layer decoder at this size, the
                     paper's 4 at full size), mask rate 0.15
  LTG-BERT's         the masked-only system as its code builds it (its attention without the
                     value gate, a plain residual stream, mask rate 0.15, no z-loss) against
                     GPT-BERT's network trained masked-only

Every variant keeps the proxy's optimizer (AdamW at 2e-3), so that only the network or the
objective differs; the named configs (configs/ltg_bert_small.py, ...) carry each system's own
LAMB recipe. `elc`, `bootstrap` and `ltg_bert` were re-run on 2026-12-07 after the systems were
made equal to their reference code (issue 20); before that `elc` was ELC-BERT's
weighted-output ablation and `bootstrap` kept GPT-BERT's attention and no final LayerNorms.

Each variant is scored with a backend its objective was trained for, on the whole fast
suites: causal for every variant with causal rows (the reference also with mntp, GPT-BERT's
other reading), pll for masked-only and BootBERT on a fixed 2,000-item subset of each suite.
The masked readings cost one forward pass per token: 494 s for blimp_fast at this size
against 53 s for the causal reading (measured 2026-12-01), so giving every hybrid variant both
readings would add about an hour to the sweep. The validation losses (masked and causal parts) compare
every variant on the same held-out text.
"""

from babylm_jax.sweep.spec import sweep_config


def get_config():
  return sweep_config(
      base="configs/cpu_proxy.py",
      budget=0.25,
      overrides={
          # The reference is GPT-BERT whatever the proxy recipe chose: hybrid rows (15 masked
          # : 1 causal) and GPT-BERT's layer weighting; each variant changes one thing.
          "objective.kind": "hybrid",
          "objective.causal_fraction": 1 / 16,
          "objective.masked_weight": 15 / 16,
          "model.layer_weighting": "gpt_bert",
          # A save every 50 steps (about 4 minutes): a sweep stopped with its session loses
          # little of the variant that was training.
          "checkpoint.every": 50,
          # Learning curves about every 250k words (the quarter budget sees ~1.5M words).
          "train.eval_suites": "blimp_fast,supplement,ewok",
          "train.eval_suites_every_words": 250_000,
          "train.eval_suites_max_items": 2000,
          # The table: whole suites, the causal reading (variants without causal rows set
          # theirs).
          "eval.suites": "blimp_fast,supplement,ewok",
          "eval.backend": "causal",
      },
      variants=[
          ("gpt_bert", {"eval.backend": "causal,mntp"}),  # the reference, both readings
          ("gpt_bert_seed1", {"seed": 1}),  # the same, another seed: run-to-run noise
          ("causal_only", {"objective.kind": "causal", "eval.backend": "causal"}),
          ("masked_only", {"objective.kind": "masked", "eval.backend": "pll",
                           "eval.max_items": 2000, "train.eval_suites_backend": "pll",
                           "train.eval_suites_max_items": 500}),
          ("standard_attention", {"model.attention": "standard", "model.position": "rotary"}),
          ("elc", {"model.layer_weighting": "elc"}),
          ("residual", {"model.layer_weighting": "residual"}),
          ("no_normformer", {"model.normformer": False}),
          ("bootstrap", {"objective.kind": "bootstrap", "model.decoder_layers": 2,
                         "objective.mask_rate_start": 0.15, "objective.mask_rate_end": 0.15,
                         "objective.z_loss": 0.0, "model.attention": "ltg",
                         "model.layer_weighting": "residual", "model.final_norm": True,
                         "model.depth_scaling": "boot_bert",
                         "eval.backend": "pll", "eval.max_items": 2000,
                         "train.eval_suites_backend": "pll",
                         "train.eval_suites_max_items": 500}),
          ("ltg_bert", {"objective.kind": "masked", "objective.mask_rate_start": 0.15,
                        "objective.mask_rate_end": 0.15, "objective.z_loss": 0.0,
                        "model.attention": "ltg", "model.layer_weighting": "residual",
                        "eval.backend": "pll", "eval.max_items": 2000,
                        "train.eval_suites_backend": "pll",
                        "train.eval_suites_max_items": 500}),
      ],
  )
