"""The multilingual track at the tests' size: English, Dutch and Chinese, a minute on a CPU.

The shared MNLI sentences of ../shared/data/multilingual/text (not BabyBabelLM text: pipeline
tests only), equal shares of 150,000 English-equivalent words, a byte-level BPE of 1,024 tokens
shared by the three languages with CJK characters pre-tokenized one by one, and the smoke
network (2 layers x 64, GPT-BERT's hybrid objective) for 60 steps.
"""

from babylm_jax.config import repo_path
from configs import smoke

TEXT = repo_path("../shared/data/multilingual/text")


def use_mnli_text(c):
  """Sets config `c` to the multilingual track on the shared MNLI text (this config's and
  configs/multilingual_proxy.py's data): three languages at equal shares, one tokenizer
  with CJK characters isolated."""
  c.track = "multilingual"
  c.data.languages = f"eng={TEXT}/eng.train,nld={TEXT}/nld.train,zho={TEXT}/zho.train"
  c.data.language_shares = "equal"
  # MNLI lines hold no blank lines: cut documents of about a paragraph (Chinese cuts at a
  # newline, having no spaces), so that the pick and the held-out lines are fine-grained.
  c.data.clean.max_doc_chars = 1000
  c.tokenizer.split_cjk = True


def get_config():
  c = smoke.get_config()
  use_mnli_text(c)
  c.data.language_words = 150_000
  c.data.dev_fraction = 0.02
  c.train.steps = 60
  c.train.log_every = 10
  c.train.eval_every = 30
  c.train.eval_batches = 2
  c.checkpoint.every = 30
  return c
