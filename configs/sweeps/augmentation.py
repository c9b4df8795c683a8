"""The seed's augmentation questions (issue 23): does a teacher help a student, by its
predictions (distillation) or by its text (generated data)?

  python launch.py --mode=sweep --config configs/sweeps/augmentation.py[:DATA_SWEEP] \
    --workdir runs/augmentation [--config.sweep.only=NAME]

DATA_SWEEP is the workdir of configs/sweeps/data_questions.py (default runs/data_questions):
its finished runs `mix` and `mix_seed1` are the teachers, and every variant here trains on
its `corpora/mix` (BabyLM's mix at 1.1M words) with its one tokenizer and validates on the
same dev text, so every row is the data sweep's `mix` with one thing changed. The sweep
refuses to load, in one line, while a teacher is not finished.

  proxy, proxy_seed1  the plain proxy on the mix, seeds 0 and 1: exactly the data sweep's
                      `mix` and `mix_seed1` (the teachers themselves). The runner does not
                      point a variant at another folder; copy the finished runs in instead
                      of training them again (cp -r DATA_SWEEP/mix runs/augmentation/proxy,
                      and mix_seed1 to proxy_seed1): it checks that the settings match.
  distill_one         a student of `mix` (Baby Llama's loss: alpha 0.5, T 2.0)
  distill_two         a student of `mix` and `mix_seed1` (their probabilities averaged)
  generated           the proxy on 990k words of the mix plus ~110k words that `mix`
                      generated (prepare steps: --mode=corpus, then --mode=generate)

The word budget: the students' teachers were trained on the student's own corpus (the same
manifest), so their words are counted once and the students count 1.1M words as the plain
proxy does. For `generated` the generated words count (data.count_generated stays True), so
its real text is cut by the planned amount to keep the text it reads at 1.1M words: the mix
recipe is rebuilt at 1.1M - 110k words, and 1,536 prompts (openings of the mix's documents)
get 111 new tokens each, about 110k words at the proxy's 0.65 words a token (6.96M tokens
for 4.53M words). The exact count is in the manifest (generation.json); what it differs by
from 110k, the text read differs from 1.1M words by. By the rules its budget line is larger
still: the generating run's 1.1M training words count beside its own, since the rebuilt
corpus is other text (another hash) than the teacher's: 2.2M words, inside strict-small's 10M.

Every variant is the CPU proxy recipe at 850 steps (about 50 minutes of training each on the
2-core machine, more with a teacher's forward passes), scored as the data sweep scores.
"""

import os

from babylm_jax.errors import UserError
from babylm_jax.sweep.spec import settings, sweep_config

from configs.sweeps import data_questions

TEACHERS = ("mix", "mix_seed1")
GENERATED_WORDS = 110_000  # planned: 1,536 samples of 111 tokens at ~0.65 words a token
PROMPTS, NEW_TOKENS = 1_536, 111  # <s> + 16 prompt tokens + 111 new: the proxy's length, 128


def teacher_dirs(data_sweep: str) -> list[str]:
  """The finished teacher runs in the data sweep's workdir; one-line UserError otherwise."""
  from babylm_jax.sweep import summary
  out = []
  for name in TEACHERS:
    wd = os.path.join(data_sweep, name)
    if not summary.trained(wd):
      raise UserError(f"teacher '{wd}' is not a finished run; finish the data sweep's "
                      f"variant first (--config.sweep.only={name}) or pass its workdir as "
                      f"--config configs/sweeps/augmentation.py:DATA_SWEEP.")
    out.append(wd)
  return out


def get_config(data_sweep: str = "runs/data_questions"):
  data_sweep = os.path.abspath(data_sweep)
  one, two = teacher_dirs(data_sweep)
  data = data_questions.get_config().sweep
  mix = {"data.path": os.path.join(data_sweep, "corpora", "mix"),
         "tokenizer.path": os.path.join(data_sweep, "tokenizer", "tokenizer.json")}
  baby_llama = {"objective.distill.alpha": 0.5, "objective.distill.temperature": 2.0,
                "objective.distill.ensemble": "probs"}
  recipe = next(c for c in data.corpora if c["name"] == "mix")
  real = dict(recipe["overrides"])
  real["data.corpus.total_words"] = data_questions.WORDS - GENERATED_WORDS
  return sweep_config(
      base=data.base,
      overrides=dict(data.overrides, **mix),
      prepare=[
          ("real", "{sweep}/augmented/real/corpus.json",
           ["--mode=corpus", "--config", recipe["recipe"], "--workdir",
            "{sweep}/augmented/real", *settings(real.items())]),
          ("generate", "{sweep}/augmented/generated",
           ["--mode=generate", "--workdir", one,
            "--config.generate.out={sweep}/augmented/generated",
            f"--config.generate.corpus_prompts={PROMPTS}",
            f"--config.generate.max_new_tokens={NEW_TOKENS}", "--config.generate.seed=0"]),
      ],
      variants=[
          ("proxy", {}),
          ("proxy_seed1", {"seed": 1}),
          ("distill_one", {"objective.distill.teachers": one, **baby_llama}),
          ("distill_two", {"objective.distill.teachers": f"{one},{two}", **baby_llama}),
          ("generated", {"data.path": "{sweep}/augmented/*/*.train"}),
      ],
  )
