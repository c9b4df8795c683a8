"""A CPU-sized trilingual proxy: configs/cpu_proxy.py's network on the shared MNLI text.

English, Dutch and Chinese from ../shared/data/multilingual/text at equal shares (about
520,000 English-equivalent words in all, as much as the scarcest language, English, allows:
172,862 of it), one byte-level BPE of 8,192 tokens with CJK characters isolated, and the CPU
proxy's causal GPT-BERT (4 layers x 256, AdamW at 2e-3). MNLI sentences are not BabyBabelLM
text: this proxy is for comparing changes on a CPU, never for reporting MNLI scores.

  python launch.py --config configs/multilingual_proxy.py --workdir runs/multilingual_proxy
"""

from configs import cpu_proxy, multilingual_smoke


def get_config():
  c = cpu_proxy.get_config()
  multilingual_smoke.use_mnli_text(c)
  c.train.eval_suites = ""  # the English suites say little here; per-language losses do
  c.eval.suites = "blimp_fast"
  return c
