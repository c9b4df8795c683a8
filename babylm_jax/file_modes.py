"""File modes as `cp` would give them, so that others can read what a run writes.

Some writers make files private: `tempfile.mkstemp` (0600) and `mkdtemp` (0700), which the
atomic writes use, and safetensors' `save_file` (0600). Their results get the modes of a plain
new file or folder instead: 0666 / 0777 less the process umask (0644 / 0755 under the usual
umask 022).
"""

from __future__ import annotations

import os


def umask() -> int:
  """The process umask, read without setting it (other threads may be creating files)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  return 0o022


def share(path) -> None:
  """Gives a file, or a folder and everything in it, the modes of a new file or folder."""
  mask = umask()
  path = os.fspath(path)
  if not os.path.isdir(path):
    os.chmod(path, 0o666 & ~mask)
    return
  for root, _, files in os.walk(path):
    os.chmod(root, 0o777 & ~mask)
    for name in files:
      f = os.path.join(root, name)
      if not os.path.islink(f):
        os.chmod(f, 0o666 & ~mask)
