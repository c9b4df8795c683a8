"""A CPU-sized trilingual proxy: configs/cpu_proxy.py's network on the shared MNLI text.

English, Dutch and Chinese from ../shared/data/multilingual/text at equal shares (about
520,000 English-equivalent words in all, as much as the scarcest language, English, allows:
172,862 of it), one byte-level BPE of 8,192 tokens with CJK characters isolated, and the CPU
proxy's causal GPT-BERT (4 layers x 256, AdamW at 2e-3). MNLI sentences are not BabyBabelLM
text: this proxy is for comparing changes on a CPU, never for reporting MNLI scores.

  python launch.py --config configs/multilingual_proxy.py --workdir runs/multilingual_proxy
"""

from babylm_jax.config import repo_path
from configs import cpu_proxy

TEXT = repo_path("../shared/data/multilingual/text")


def get_config():
  c = cpu_proxy.get_config()
  c.track = "multilingual"
  c.data.languages = f"eng={TEXT}/eng.train,nld={TEXT}/nld.train,zho={TEXT}/zho.train"
  c.data.language_shares = "equal"
  c.data.clean.max_doc_chars = 1000  # see configs/multilingual_smoke.py
  c.tokenizer.split_cjk = True
  c.train.eval_suites = ""  # the English suites say little here; per-language losses do
  c.eval.suites = "blimp_fast"
  return c
