"""A virtual environment with the BabyLM 2025 pipeline's pinned transformers, for subprocesses.

The official evaluation pipeline (babylm/evaluation-pipeline-2025, requirements.txt) pins
transformers 4.51.3 and tokenizers 0.21.1, whose AutoTokenizer and model loading differ from the
5.x this project is tested with. Tests run `tests/hf_probe.py` under both: `sys.executable` for
5.x and the python of this environment for the pins.

The environment holds only what loading an export needs: the pipeline's pins of transformers,
tokenizers, huggingface-hub, safetensors and numpy, and torch 2.13.0 (the pipeline pins 2.7.0, a
CUDA download; 2.13.0 is this machine's CPU wheel). A second, smaller one (COLLATE_PINS) holds
what the pipeline's collate_preds.py imports (numpy, scipy, pandas, statsmodels), to check a
submission folder with it; a third (RUNNER_PINS) adds to the first what its zero-shot runner
imports (scipy, datasets, aiohttp), for benchmarks/official_parity.py; a fourth (LM_EVAL_PINS)
holds lm-evaluation-harness for benchmarks/lm_eval_parity.py. Each is built once per set of pins and Python version under
~/.cache/babylm_jax/venvs/<key> (BABYLM_VENV_CACHE moves it), behind a lock, and marked complete
only after pip succeeded. When pip cannot install the pins the test fails with
pip's own words: the check must run, never be skipped.
"""

import fcntl
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

PINS = ("transformers==4.51.3", "tokenizers==0.21.1", "huggingface-hub==0.31.0",
        "safetensors==0.5.3", "numpy==2.2.5", "torch==2.13.0")
# collate_preds.py's imports at the pipeline's pins (requirements.txt).
COLLATE_PINS = ("numpy==2.2.5", "scipy==1.15.2", "pandas==2.2.3", "statsmodels==0.14.4")
# The pipeline's zero-shot runner (sentence_zero_shot.run) also imports datasets, aiohttp and
# scipy at module level: benchmarks/official_parity.py runs it under these.
RUNNER_PINS = PINS + ("scipy==1.15.2", "datasets==3.6.0", "aiohttp==3.11.18")
# lm-evaluation-harness as the 2026 multilingual track runs it (babylm-org/babylm-eval pins
# nothing; 0.4.13 with its `hf` extra, and this project's transformers, tokenizers and torch)
# for benchmarks/lm_eval_parity.py.
LM_EVAL_PINS = ("lm_eval[hf]==0.4.13", "transformers==5.25.0", "tokenizers==0.23.3",
                "torch==2.13.0")
CACHE = pathlib.Path(os.environ.get("BABYLM_VENV_CACHE",
                                    pathlib.Path.home() / ".cache" / "babylm_jax" / "venvs"))
PROBE = pathlib.Path(__file__).resolve().parent / "hf_probe.py"
BUILD_TIMEOUT_S = 900


def _key(pins) -> str:
  spec = "\n".join([sys.version.split()[0], *pins])
  return hashlib.sha256(spec.encode()).hexdigest()[:16]


def pinned_python(pins=None) -> pathlib.Path:
  """The python of the environment with `pins` (PINS by default, read when called), built
  here first if needed (about 40 s)."""
  pins = PINS if pins is None else pins
  folder = CACHE / _key(pins)
  python = folder / "bin" / "python"
  done = folder / "complete"
  CACHE.mkdir(parents=True, exist_ok=True)
  with open(CACHE / f"{_key(pins)}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if done.is_file() and python.is_file():
      return python
    shutil.rmtree(folder, ignore_errors=True)  # a build that stopped halfway
    t0 = time.perf_counter()
    steps = [[sys.executable, "-m", "venv", str(folder)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *pins]]
    for cmd in steps:
      try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
      except subprocess.TimeoutExpired:
        pytest.fail(f"building the pinned environment ({' '.join(pins)}) took over "
                    f"{BUILD_TIMEOUT_S} s at: {' '.join(cmd[:4])}")
      if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        pytest.fail(f"cannot build the environment with the BabyLM pipeline's pins "
                    f"({' '.join(pins)}); pip said:\n{tail}")
    done.write_text(f"built in {time.perf_counter() - t0:.1f} s\n" + "\n".join(pins) + "\n")
    return python


def probe(python, *args, timeout=1800) -> subprocess.CompletedProcess:
  """Runs tests/hf_probe.py under `python` with stdin closed (a prompt cannot wait), offline."""
  env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONNOUSERSITE="1",
             TOKENIZERS_PARALLELISM="false")
  env.pop("PYTHONPATH", None)  # nothing of this checkout or of the test venv leaks in
  res = subprocess.run([str(python), str(PROBE), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
  assert res.returncode == 0, f"{python} {PROBE.name} {args[0]} failed:\n{res.stderr[-3000:]}"
  return res
