"""The seed's data questions (issue 22): which words, how curated, in which order.

  python launch.py --mode=sweep --config configs/sweeps/data_questions.py \
    --workdir runs/data_questions [--config.sweep.only=NAME]

Every variant is the CPU proxy track (causal GPT-BERT network, 4 x 256, AdamW, 850 steps of
8,192 tokens: about 50 minutes of training each on the 2-core machine); only the data differ.
The sweep first builds its corpora with --mode=corpus (WORKDIR/corpora/<name>, each with its
corpus.json and corpus.md) and one tokenizer on the reference corpus that every variant reads,
and validates every variant on the same held-out text (BabyLM 2025's dev sample,
dev_bb25_small: all domains, never in any training corpus), so the validation losses compare.
A killed sweep resumes where it stopped when run again.

Why 1.1M words and not the proxy's 3.45M: the shared sample holds 600k words of each domain,
so a corpus that weights two domains at 80% cannot reach 3.45M words without repeating text.
At 1.1M words every recipe is filled from distinct documents (CHILDES, the largest share of
child_directed at 50%, needs 550k of its 600k); the proxy's 850 steps then read each corpus
about 4 times (within the strict tracks' limit). The proxy on its own 3.45M words is the last
row, for scale.

  mix             BabyLM's own mix (configs/corpora/babylm_default.py): the reference, two seeds
  textbook        80% Simple Wikipedia and Gutenberg (configs/corpora/textbook_encyclopedia.py)
  child_directed  50% CHILDES, most of the rest spoken (configs/corpora/child_directed.py)
  dedup           the mix from text with exact and near duplicates removed first (same words)
  developmental   the mix, read child-directed speech first, encyclopedia last (data.order)
  difficulty      the mix, read easy documents first (mean unigram surprisal, 4 buckets)
  proxy           configs/cpu_proxy.py's data as it is (3.45M words, about 1.3 epochs)

Scored with the causal backend on the whole fast suites and the official fast entity
tracking set (the `regular` split).
"""

from babylm_jax.config import repo_path
from babylm_jax.sweep.spec import sweep_config

WORDS = 1_100_000
TEXT = "../shared/data/babylm_text"
DEVELOPMENTAL = "childes,bnc_spoken,switchboard,open_subtitles,gutenberg,simple_wiki"


def _recipe(file: str, **overrides):
  return (f"configs/corpora/{file}.py", {"data.corpus.total_words": WORDS, **overrides})


def get_config():
  return sweep_config(
      base="configs/cpu_proxy.py",
      corpora={
          "mix": _recipe("babylm_default"),
          "textbook": _recipe("textbook_encyclopedia"),
          "child_directed": _recipe("child_directed"),
          "dedup": _recipe("babylm_default", **{"data.corpus.curate.exact.enabled": True,
                                                "data.corpus.curate.near.enabled": True}),
      },
      tokenizer_from="mix",
      overrides={
          "data.dev_path": repo_path(f"{TEXT}/dev_bb25_small"),
          "checkpoint.every": 50,  # about 3 minutes: a stopped session loses little
          "train.eval_suites": "",  # no learning curves: the table is the final scores
          "eval.suites": "blimp_fast,supplement,ewok,entity_tracking",
          "eval.backend": "causal",
          "eval.data.entity_tracking": repo_path(
              "../shared/data/babylm_eval/entity_tracking/regular.jsonl"),
      },
      variants=[
          ("mix", {"data.path": "{sweep}/corpora/mix"}),
          ("mix_seed1", {"data.path": "{sweep}/corpora/mix", "seed": 1}),
          ("textbook", {"data.path": "{sweep}/corpora/textbook"}),
          ("child_directed", {"data.path": "{sweep}/corpora/child_directed"}),
          ("dedup", {"data.path": "{sweep}/corpora/dedup"}),
          ("developmental", {"data.path": "{sweep}/corpora/mix", "data.order": "domains",
                             "data.order_domains": DEVELOPMENTAL}),
          ("difficulty", {"data.path": "{sweep}/corpora/mix", "data.order": "difficulty",
                          "data.order_buckets": 4}),
          ("proxy", {}),
      ],
  )
