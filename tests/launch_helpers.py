"""Helpers for tests that run launch.py as a real subprocess: environment, the smoke run's
arguments, a run killed with SIGKILL mid-way, metrics and checkpoints read back, file snapshots,
a process without root's file powers, a terminal."""

import ctypes
import hashlib
import json
import os
import pathlib
import pty
import signal
import struct
import subprocess
import sys
import time

import numpy as np

from conftest import ROOT, TEST_XLA_FLAGS, data_path


def env(xla_flags: str = TEST_XLA_FLAGS) -> dict:
  """This process's environment for a launched run: CPU, and the tests' XLA flags (never a
  parent's device count); xla_flags="" gives XLA's defaults to a run that computes more than it
  compiles."""
  e = dict(os.environ)
  e["XLA_FLAGS"] = xla_flags
  e["JAX_PLATFORMS"] = "cpu"
  return e


def launch(*args, cwd=ROOT, timeout=1800, preexec_fn=None):
  """python launch.py ARGS, waited for; stdout and stderr as text."""
  return subprocess.run([sys.executable, str(ROOT / "launch.py"), *map(str, args)], cwd=cwd,
                        capture_output=True, text=True, timeout=timeout, env=env(),
                        preexec_fn=preexec_fn)


def _as_from_a_terminal():
  # A shell starts background jobs (`pytest ... &`, nohup) with Ctrl-C ignored, and children
  # inherit that; the run under test must see Ctrl-C as it would when typed in a terminal.
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args, stdout=subprocess.DEVNULL):
  """python launch.py ARGS, running in the background (stderr piped)."""
  return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *map(str, args)], cwd=ROOT,
                          env=env(), stdout=stdout, stderr=subprocess.PIPE, text=True,
                          preexec_fn=_as_from_a_terminal)


def error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def losses(workdir) -> dict[int, float]:
  out = {}
  for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
    rec = json.loads(line)
    if "loss" in rec:
      assert rec["step"] not in out, f"step {rec['step']} logged twice"
      out[rec["step"]] = rec["loss"]
  return out


def final_params(workdir, step):
  """The parameters of the checkpoint at `step`, read back with orbax as plain numpy."""
  import jax
  import orbax.checkpoint as ocp
  path = pathlib.Path(workdir) / "checkpoints" / str(step) / "state"
  tree = ocp.StandardCheckpointer().restore(path)
  return [np.asarray(x) for x in jax.tree.leaves(tree["params"])]


def checkpoint_steps(workdir) -> list[int]:
  folder = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def snapshot(folder) -> dict[str, tuple]:
  """Every file under `folder`: (size, mtime in ns, sha256) by relative path."""
  out = {}
  for p in sorted(pathlib.Path(folder).rglob("*")):
    if p.is_file():
      st = p.stat()
      out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
  return out


_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3
_PR_CAPBSET_DROP = 24


def without_root_powers():
  """preexec_fn: a root process loses the right to ignore file permissions (the bounding set
  is what root gets back at exec); an ordinary user's process is unchanged."""
  if os.geteuid() != 0:
    return
  libc = ctypes.CDLL(None, use_errno=True)
  for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
    if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
      raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed: run the tests as a "
                                        "non-root user or with CAP_SETPCAP")


def run_in_terminal(cmd: list[str], columns: int = 120,
                    timeout: float = 1800) -> tuple[int, str]:
  """Runs `cmd` with stdin, stdout and stderr on a pseudo-terminal; (returncode, raw output)."""
  import fcntl
  import select
  import termios
  import time
  master, slave = pty.openpty()
  fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
  proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(env(), TERM="xterm"), stdin=slave,
                          stdout=slave, stderr=slave, close_fds=True)
  os.close(slave)
  chunks, deadline = [], time.time() + timeout
  while time.time() < deadline:
    ready, _, _ = select.select([master], [], [], 1.0)
    if ready:
      try:
        chunk = os.read(master, 65536)
      except OSError:  # the child closed the terminal
        break
      if not chunk:
        break
      chunks.append(chunk)
    elif proc.poll() is not None:
      break
  else:
    proc.send_signal(signal.SIGKILL)
  os.close(master)
  return proc.wait(), b"".join(chunks).decode("utf-8", "replace")


def render(raw: str) -> list[str]:
  """The lines a terminal shows for `raw`: a carriage return moves back to column 0 and what
  follows overwrites; ESC[K clears to the end of the line; ESC[A moves up a line."""
  import re
  screen, row, col = [[]], 0, 0
  for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|\r\n|.", raw, re.S):
    if token in ("\n", "\r\n"):
      row, col = row + 1, 0
      if row == len(screen):
        screen.append([])
    elif token == "\r":
      col = 0
    elif token.startswith("\x1b["):
      if token.endswith("K"):
        del screen[row][col:]
      elif token.endswith("A"):
        row = max(0, row - int(token[2:-1] or 1))
    else:
      line = screen[row]
      line.extend(" " * (col - len(line) + 1))
      line[col] = token
      col += 1
  return ["".join(line).rstrip() for line in screen]


def smoke_args(workdir, cache, *extra, steps=30, devices=None) -> list[str]:
  """launch.py on configs/smoke.py over the 100k-word text: 30 steps, a checkpoint every 10."""
  args = [sys.executable, "launch.py", "--config", "configs/smoke.py", "--workdir", str(workdir),
          f"--config.data.path={data_path('babylm_text', 'train_100k')}",
          f"--config.data.cache_dir={cache}", f"--config.train.steps={steps}",
          "--config.train.log_every=5", "--config.train.eval_every=1000",
          "--config.train.eval_batches=2", "--config.checkpoint.every=10"]
  if devices:
    args.append(f"--cpu_devices={devices}")
  return args + list(extra)


def smoke_run(workdir, cache, *extra, steps=30, devices=None, timeout=600, run_env=None):
  return subprocess.run(smoke_args(workdir, cache, *extra, steps=steps, devices=devices),
                        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        env=run_env or env())


def ok(result):
  assert result.returncode == 0, result.stderr[-3000:]


def kill_after(workdir, args, checkpoint, past, run_env=None, timeout=300):
  """Starts a run and SIGKILLs it once `checkpoint` exists and a step past `past` is logged."""
  proc = subprocess.Popen(args, cwd=ROOT, env=run_env or env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + timeout
  log = pathlib.Path(workdir) / "metrics.jsonl"
  while time.time() < deadline:
    if (pathlib.Path(workdir) / "checkpoints" / str(checkpoint)).exists() and log.exists() and max(
        [0] + [json.loads(l)["step"] for l in log.read_text().splitlines() if l.strip()]) >= past:
      break
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
