"""The run's folder: one run at a time in it, and one-line errors when it cannot be written.

The lock is a claim file per run, `lock-<nonce>.json` (process id, host, start time), next to
a heartbeat file `lock-<nonce>.alive` rewritten every minute. It uses only what every epath
backend has (write a new file, list, stat, delete), so it works the same on a local disk, NFS
and a `gs://` bucket, which has no exclusive create or file locks:
  1. write our claim; wait `SETTLE_S` (longer than the clock step of file times);
  2. list the live claims; the one written first (by the store's own time, then by name)
     holds the workdir, every other claimant deletes its claim and stops.
A claim is dead when its process is gone (same host: the process id no longer runs) or, for
another host, when its heartbeat is older than `STALE_S`. Dead claims never block and are
removed by the next run. Only process 0 of a multi-process run claims the workdir.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid

from etils import epath

from babylm_jax.errors import UserError

SETTLE_S = 1.0
HEARTBEAT_S = 60.0
STALE_S = 600.0


def os_error_line(e: OSError) -> str:
  """One sentence for an operating-system error: what failed, on which path, what to do."""
  if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
    fix = "free some space there (or choose a folder on another disk) and run again"
  elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    fix = "make it readable (and writable) for this user, or choose another path"
  elif e.errno == errno.ENOENT:
    fix = "check that the path exists"
  else:
    fix = "check the path and the disk"
  return f"{e.strerror or type(e).__name__}: '{e.filename or '?'}'; {fix}."


def is_disk_full(e: BaseException) -> bool:
  """True for 'no space' errors, including those tensorstore raises as ValueError."""
  if isinstance(e, OSError):
    return e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
  return any(s in str(e) for s in ("RESOURCE_EXHAUSTED", "No space left", "File too large",
                                    "Disk quota exceeded"))


def prepare(workdir) -> epath.Path:
  """The workdir as a folder, created if missing; UserError if it is a file or cannot be made."""
  path = epath.Path(workdir)
  if path.exists() and not path.is_dir():
    raise UserError(f"--workdir '{workdir}' is a file, not a folder; pass a folder path "
                    f"(it is created if missing).")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise UserError(f"--workdir '{workdir}' cannot be created ({e.strerror or e}); choose a "
                    f"folder this user can write.") from None
  return path


def check_writable(folder, field: str):
  """Raises UserError when `folder` could not be written (or, if missing, created); leaves
  nothing behind."""
  path = epath.Path(folder)
  while not path.exists() and path.parent != path:
    path = path.parent
  probe = path / f".write-test-{uuid.uuid4().hex[:8]}"
  try:
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise UserError(f"{field} '{folder}' cannot be written ({e.strerror or e}); make it "
                    f"writable for this user or choose another folder.") from None


def _start_ticks(pid: int) -> str | None:
  """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _running(pid: int, start_ticks: str | None) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process: it runs
    return True
  return start_ticks is None or _start_ticks(pid) in (None, start_ticks)


class _Claim:
  """One claim file read back: who wrote it, when (store time) and whether it is alive."""

  def __init__(self, path: epath.Path):
    self.path = path
    self.alive_path = path.with_suffix(".alive")
    self.info = json.loads(path.read_text())
    self.mtime = path.stat().mtime

  def heartbeat(self) -> float:
    try:
      return self.alive_path.stat().mtime
    except OSError:
      return self.mtime

  def alive(self, now: float) -> bool:
    if self.info.get("host") == socket.gethostname():
      return _running(int(self.info["pid"]), self.info.get("start_ticks"))
    return now - self.heartbeat() < STALE_S

  def describe(self) -> str:
    return f"process {self.info.get('pid')} on host {self.info.get('host')}"

  def remove(self):
    for p in (self.path, self.alive_path):
      with contextlib.suppress(OSError):
        p.unlink()


class RunLock:
  """Holds a workdir for one run (see the module docstring); use as a context manager."""

  def __init__(self, workdir, what: str = "training"):
    self.workdir = epath.Path(workdir)
    self.what = what
    self.path = self.workdir / f"lock-{uuid.uuid4().hex[:12]}.json"
    self._stop = threading.Event()
    self._thread = None

  def __enter__(self):
    info = dict(pid=os.getpid(), host=socket.gethostname(), what=self.what,
                start_ticks=_start_ticks(os.getpid()),
                started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    try:
      self.path.write_text(json.dumps(info))
    except OSError as e:
      raise UserError(f"--workdir '{self.workdir}' cannot be written ({e.strerror or e}); make "
                      f"it writable for this user or choose another folder.") from None
    time.sleep(SETTLE_S)
    now = self.path.stat().mtime  # the store's clock, as the other claims' times are
    holder = None
    for claim in self._claims():
      if claim.path == self.path or claim.alive(now):
        holder = claim if holder is None or (claim.mtime, claim.path.name) < (
            holder.mtime, holder.path.name) else holder
      else:
        logging.warning("removed the lock of %s in %s, which is no longer running.",
                        claim.describe(), self.workdir)
        claim.remove()
    if holder is None or holder.path != self.path:
      self._release_files()
      who = f"{holder.describe()} ({holder.info.get('what', 'a run')} since " \
            f"{holder.info.get('started', '?')})" if holder else "another run"
      raise UserError(f"--workdir '{self.workdir}' is in use by {who}; wait for it to end or "
                      f"stop it, or pass another --workdir.")
    self._thread = threading.Thread(target=self._beat, daemon=True, name="workdir-lock")
    self._thread.start()
    return self

  def _claims(self) -> list[_Claim]:
    claims = []
    for p in self.workdir.glob("lock-*.json"):
      with contextlib.suppress(OSError, ValueError, KeyError):  # gone or being written
        claims.append(_Claim(p))
    return claims

  def _beat(self):
    alive = self.path.with_suffix(".alive")
    while not self._stop.wait(HEARTBEAT_S):
      with contextlib.suppress(OSError):
        alive.write_text(datetime.datetime.now(datetime.timezone.utc).isoformat())

  def _release_files(self):
    for p in (self.path, self.path.with_suffix(".alive")):
      with contextlib.suppress(OSError):
        p.unlink()

  def __exit__(self, *exc):
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    self._release_files()
    return False


def lock(workdir, what: str = "training"):
  """The run's lock on process 0; a no-op context on the other processes."""
  import jax
  if jax.process_index() != 0:
    return contextlib.nullcontext()
  return RunLock(workdir, what)
