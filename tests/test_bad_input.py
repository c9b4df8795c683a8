"""Bad input and a hostile system through launch.py: one line on stderr, exit 2, nothing left.

Every field checked before any work; config files that do not load; --help; paths that
resolve from any current folder; a corpus that is not text; unreadable data, a workdir that is
a file or read-only, a full disk under a checkpoint, the cache or an export; Ctrl-C during
--mode=prepare; the workdir lock's rules for other hosts and simultaneous starts.
"""

import base64
import contextlib
import json
import os
import pathlib
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from babylm_jax import workdir as workdir_lib
from babylm_jax.errors import UserError
from conftest import ROOT, data_path
from launch_helpers import (error_lines, launch, snapshot, start, without_root_powers)

SMOKE = ("--config", "configs/smoke.py")
TINY = ("--config.model.hidden_size=32", "--config.model.intermediate_size=64",
        "--config.train.eval_batches=1")


def one_error(r, fragment: str) -> str:
  """Asserts exit 2 with exactly one 'error:' line holding `fragment` and no traceback."""
  assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
  lines = error_lines(r.stderr)
  assert len(lines) == 1 and fragment in lines[0], (fragment, r.stderr[-3000:])
  assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-3000:]
  return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  folder = tmp_path_factory.mktemp("corpus")
  (folder / "gutenberg.train").write_bytes(
      data_path("babylm_text", "train_100k", "gutenberg_dev.train").read_bytes())
  return folder


# ---------------------------------------------------------------------------------------
# Validation before any work.

@pytest.mark.parametrize("flag,fragment", [
    ("--config.train.tokens_per_step=0", "train.tokens_per_step (0) must be positive"),
    ("--config.train.tokens_per_step=-128", "train.tokens_per_step (-128) must be positive"),
    ("--config.checkpoint.keep=0", "checkpoint.keep (0) must be positive"),
    ("--config.checkpoint.every=0", "checkpoint.every (0) must be positive"),
    ("--config.train.log_every=0", "train.log_every (0) must be positive"),
    ("--config.train.eval_every=-5", "train.eval_every (-5) must be positive"),
    ("--config.model.dropout=1.5", "model.dropout (1.5) must lie in [0, 1)"),
    ("--config.model.dropout=-0.1", "model.dropout (-0.1) must lie in [0, 1)"),
    ("--config.train.lr=0.0", "train.lr (0.0) must be positive"),
    ("--cpu_devices=0", "--cpu_devices (0) must be at least 1"),
    ("--config.data.order=random", "data.order 'random' is unknown; use one of shuffled, "
                                   "domains, difficulty."),
    ("--config.data.order=domains", "data.order 'domains' needs data.order_domains"),
])
def test_bad_values_are_refused_before_any_work(tmp_path, flag, fragment):
  wd, cache = tmp_path / "wd", tmp_path / "cache"
  t0 = time.time()
  r = launch(*SMOKE, "--workdir", wd, f"--config.data.cache_dir={cache}", flag)
  one_error(r, fragment)
  # Nothing read, trained or written: no workdir, no tokenizer or token store in the cache,
  # and no JAX backend started (the whole process is a Python start-up).
  assert not wd.exists() and not cache.exists()
  assert time.time() - t0 < 30


@pytest.mark.parametrize("source,fragment", [
    ("def get_config(:\n", "has a syntax error at line 1"),
    ("def get_config():\n  return {'train': {}}\n", "returns a dict from get_config(), not an "
                                                     "ml_collections.ConfigDict"),
    ("def get_config():\n  c = None\n", "returns a NoneType"),
    ("import no_such_module_here\n", "failed to run (ModuleNotFoundError"),
    ("def get_config():\n  return 1 / 0\n", "raised ZeroDivisionError in get_config()"),
])
def test_config_files_that_do_not_load(tmp_path, source, fragment):
  path = tmp_path / "bad_config.py"
  path.write_text(source)
  one_error(launch("--config", path, "--workdir", tmp_path / "wd"), fragment)
  assert not (tmp_path / "wd").exists()


def test_help_lists_flags_and_modes():
  r = launch("--help")
  assert r.returncode == 0, r.stderr
  for word in ("--config", "--workdir", "--mode", "--cpu_devices", "prepare", "train", "eval",
               "finetune", "export", "repository root"):
    assert word in r.stdout, word


@pytest.mark.parametrize("args", [("--mode=trian", "--workdir", "W"),
                                  ("--mode", "evl", "--config", "configs/nope.py"),
                                  ("--workdir", "W", "--mode=exprot", *SMOKE)])
def test_unknown_mode_is_named_before_anything_else(tmp_path, args):
  """A misspelt mode is the error, whatever else is missing or wrong (no --config, a config
  file that does not exist), and the modes there are are listed."""
  r = launch(*args, cwd=tmp_path)
  mode = args[args.index("--mode") + 1] if "--mode" in args else next(
      a.split("=")[1] for a in args if a.startswith("--mode="))
  line = one_error(r, f"--mode={mode} is unknown")
  assert "prepare, corpus, train, eval, finetune, export, submit, generate, sweep" in line
  assert not (tmp_path / "W").exists()


def test_gitignore_covers_the_readmes_output_folders():
  r = subprocess.run(["git", "check-ignore", "runs/small/metrics.jsonl", "out/small/config.json"],
                     cwd=ROOT, capture_output=True, text=True)
  assert r.stdout.split() == ["runs/small/metrics.jsonl", "out/small/config.json"], r.stderr


def test_default_paths_resolve_against_the_repository(tmp_path):
  """configs/smoke.py's data path works from any current folder (here a temporary one)."""
  from conftest import load_config
  c = load_config("smoke")
  assert c.data.path == str(ROOT.parent / "shared" / "data" / "babylm_text" / "train_100k")
  assert os.path.isabs(c.eval.data.blimp) and os.path.isabs(c.finetune.data_dir)
  r = launch("--config", ROOT / "configs" / "smoke.py", "--mode=prepare",
             f"--config.data.cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "tokens/word" in r.stdout


# ---------------------------------------------------------------------------------------
# A corpus that is not text.

def _prepare(corpus_dir, cache, *extra, preexec_fn=None):
  return launch(*SMOKE, "--mode=prepare", f"--config.data.path={corpus_dir}",
                f"--config.data.cache_dir={cache}", *extra, preexec_fn=preexec_fn)


def test_binary_corpus_is_refused_unless_allowed(tmp_path):
  rng = random.Random(0)
  noise = tmp_path / "noise"
  noise.mkdir()
  (noise / "random.train").write_bytes(bytes(rng.getrandbits(8) for _ in range(200_000)))
  line = one_error(_prepare(noise, tmp_path / "c1"), "does not look like text")
  assert "are not UTF-8" in line and "--config.data.allow_binary=True" in line
  assert not (tmp_path / "c1" / "stores").exists()
  r = _prepare(noise, tmp_path / "c1", "--config.data.allow_binary=True")
  assert r.returncode == 0, r.stderr[-2000:]
  assert "bytes of data.path were not UTF-8" in r.stderr

  # Valid UTF-8 that is not language: base64 lines are one 'word' of ~50 tokens each.
  b64 = tmp_path / "b64"
  b64.mkdir()
  raw = bytes(rng.getrandbits(8) for _ in range(150_000))
  (b64 / "dump.train").write_bytes(base64.encodebytes(raw))
  line = one_error(_prepare(b64, tmp_path / "c2"), "tokens per whitespace word")
  stores = tmp_path / "c2" / "stores"
  assert not stores.exists() or not list(stores.glob("*/meta.json"))


# ---------------------------------------------------------------------------------------
# The operating system says no.

def test_unreadable_data_file(tmp_path, corpus):
  folder = tmp_path / "data"
  folder.mkdir()
  locked = folder / "locked.train"
  locked.write_bytes((corpus / "gutenberg.train").read_bytes())
  locked.chmod(0)
  line = one_error(_prepare(folder, tmp_path / "cache", preexec_fn=without_root_powers),
                   "cannot be read")
  assert str(locked) in line


def test_workdir_that_is_a_file(tmp_path, corpus):
  wd = tmp_path / "wd"
  wd.write_text("not a folder")
  one_error(launch(*SMOKE, "--workdir", wd, f"--config.data.path={corpus}"), "is a file")
  assert wd.read_text() == "not a folder"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
  """A finished 4-step run of the tiny model."""
  wd = tmp_path_factory.mktemp("trained") / "run"
  r = launch(*SMOKE, "--workdir", wd, f"--config.data.path={corpus}",
             f"--config.data.cache_dir={tmp_path_factory.mktemp('cache')}",
             "--config.train.steps=4", "--config.checkpoint.every=4", *TINY)
  assert r.returncode == 0, r.stderr[-3000:]
  return wd


@contextlib.contextmanager
def read_only(*paths):
  """chmod -w on every file and folder under `paths`, undone afterwards."""
  modes = {}
  for root in paths:
    for p in [root, *root.rglob("*")]:
      modes[p] = p.stat().st_mode
      p.chmod(modes[p] & ~0o222)
  try:
    yield
  finally:
    for p, mode in modes.items():
      p.chmod(mode)


def test_read_only_workdir(tmp_path, corpus, trained):
  run = tmp_path / "run"
  subprocess.run(["cp", "-a", str(trained), str(run)], check=True)
  fresh = tmp_path / "fresh"
  fresh.mkdir()
  blimp = data_path("babylm_eval", "fast_eval", "blimp_fast")
  with read_only(run, fresh):
    before = snapshot(run)
    for wd, what in ((fresh, "train"), (run, "resume")):
      r = launch(*SMOKE, "--workdir", wd, f"--config.data.path={corpus}", *TINY,
                 preexec_fn=without_root_powers)
      line = one_error(r, "cannot be written")
      assert str(wd) in line, what
    r = launch("--mode=eval", "--workdir", run, "--config.eval.suites=blimp_fast",
               f"--config.eval.data.blimp_fast={blimp}", preexec_fn=without_root_powers)
    one_error(r, f"'{run / 'eval'}' cannot be written")
    # Export only reads the run: a read-only workdir is fine, a read-only destination is not.
    r = launch("--mode=export", "--workdir", run, f"--config.export.dir={tmp_path / 'out'}",
               preexec_fn=without_root_powers)
    assert r.returncode == 0 and (tmp_path / "out" / "model.safetensors").exists(), r.stderr
    r = launch("--mode=export", "--workdir", run, f"--config.export.dir={fresh / 'out'}",
               preexec_fn=without_root_powers)
    one_error(r, f"export.dir '{fresh / 'out'}' could not be written")
    assert snapshot(run) == before and not list(fresh.iterdir())


@contextlib.contextmanager
def small_disk(folder: pathlib.Path, size_kb: int):
  """A folder on a tmpfs of `size_kb` where one can be mounted (root with CAP_SYS_ADMIN);
  otherwise yields a preexec_fn that caps every file the process writes at `size_kb` KB
  (RLIMIT_FSIZE: a write past it fails with EFBIG, as one past a full disk fails with
  ENOSPC)."""
  folder.mkdir(parents=True)
  mounted = os.geteuid() == 0 and subprocess.run(
      ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
      capture_output=True).returncode == 0

  def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (size_kb * 1024, size_kb * 1024))
  try:
    yield None if mounted else limit_file_size
  finally:
    if mounted:
      subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_under_a_checkpoint_the_cache_and_an_export(tmp_path, corpus, trained):
  # The run's own small files fit; the first checkpoint (about 1 MB) does not.
  with small_disk(tmp_path / "disk1", 400) as limit:
    wd = tmp_path / "disk1" / "run"
    r = launch(*SMOKE, "--workdir", wd, f"--config.data.path={corpus}",
               f"--config.data.cache_dir={tmp_path / 'cache'}", "--config.train.steps=4",
               "--config.checkpoint.every=2", *TINY, preexec_fn=limit)
    line = one_error(r, "could not be written")
    assert "free space there" in line and "resume from the start" in line
    assert not [p for p in (wd / "checkpoints").iterdir() if p.name.isdigit()]

  with small_disk(tmp_path / "disk2", 100) as limit:
    cache = tmp_path / "disk2" / "cache"
    line = one_error(_prepare(corpus, cache, preexec_fn=limit), "cannot be written")
    assert "token store cache" in line and "data.cache_dir" in line
    stores = cache / "stores"
    assert not stores.exists() or not list(stores.iterdir())

  with small_disk(tmp_path / "disk3", 300) as limit:
    out = tmp_path / "disk3" / "out"
    r = launch("--mode=export", "--workdir", trained, f"--config.export.dir={out}",
               preexec_fn=limit)
    line = one_error(r, "could not be written")
    assert "free space there" in line
    assert not out.exists() and not list((tmp_path / "disk3").iterdir())


# ---------------------------------------------------------------------------------------
# Ctrl-C during --mode=prepare.

def test_ctrl_c_during_prepare_leaves_no_valid_cache_entry(tmp_path):
  cache = tmp_path / "cache"
  proc = start(*SMOKE, "--mode=prepare", f"--config.data.cache_dir={cache}",
               f"--config.data.path={data_path('babylm_text', 'train_1M')}",
               stdout=subprocess.PIPE)
  deadline = time.time() + 300
  # The tokenizer is cached just before the documents are encoded: interrupt the encoding.
  while not list(cache.glob("tokenizers/*/tokenizer.json")):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
    time.sleep(0.01)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, (proc.returncode, out[-500:], err[-2000:])
  assert error_lines(err) == ["error: interrupted (Ctrl-C); only complete files were kept. Run "
                              "the same command again to continue."], err[-2000:]
  assert "Traceback" not in err and "Exception ignored" not in err
  assert not list(cache.glob("stores/*/meta.json")) and "tokens/word" not in out


# ---------------------------------------------------------------------------------------
# The workdir lock's rules, on real files (the subprocess cases are in test_run_lifecycle).

def _claim(workdir, host, age_s, pid=1):
  path = workdir / f"lock-{host}.json"
  path.write_text(json.dumps(dict(pid=pid, host=host, what="training", started="earlier")))
  then = time.time() - age_s
  os.utime(path, (then, then))
  return path


def test_lock_of_another_host_blocks_while_its_heartbeat_is_fresh(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lib, "SETTLE_S", 0.05)
  _claim(tmp_path, "tpu-worker-7", age_s=30)
  with pytest.raises(UserError, match="in use by process 1 on host tpu-worker-7"):
    with workdir_lib.RunLock(tmp_path):
      pass
  assert [p.name for p in tmp_path.iterdir()] == ["lock-tpu-worker-7.json"]
  # An hour without a heartbeat: that run is gone; its claim is removed and the workdir taken.
  _claim(tmp_path, "tpu-worker-7", age_s=3600)
  with workdir_lib.RunLock(tmp_path) as lock:
    assert [p.name for p in tmp_path.iterdir()] == [lock.path.name]
  assert not list(tmp_path.iterdir())


def test_lock_of_a_dead_process_on_this_host_does_not_block(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lib, "SETTLE_S", 0.05)
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True).stdout.strip()
  _claim(tmp_path, socket.gethostname(), age_s=1, pid=int(dead))
  with workdir_lib.RunLock(tmp_path):
    pass
  _claim(tmp_path, socket.gethostname(), age_s=1, pid=os.getpid())  # alive: this process
  with pytest.raises(UserError, match=f"process {os.getpid()}"):
    with workdir_lib.RunLock(tmp_path):
      pass


def test_two_runs_starting_together_get_one_lock(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lib, "SETTLE_S", 0.3)
  outcomes, barrier = [], threading.Barrier(4)

  def run():
    barrier.wait()
    try:
      with workdir_lib.RunLock(tmp_path):
        outcomes.append("held")
        time.sleep(0.5)
    except UserError:
      outcomes.append("refused")

  threads = [threading.Thread(target=run) for _ in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert sorted(outcomes) == ["held", "refused", "refused", "refused"]
