"""The library versions and the device a run used, kept in its workdir as versions.json.

Numbers are only comparable when the software under them is known: each mode that works on a
run (train, eval, finetune) records, when it starts, what it runs with under its own name, so
a run resumed or evaluated later under other versions shows both:
  {"train": {"jax": "0.10.2", ..., "python": "3.11.9", "device_kind": "NVIDIA H100 ...",
             "platform": "gpu", "devices": 1, "time": "2025-...Z"}, "eval": {...}}
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time

from etils import epath

FILE_NAME = "versions.json"
PACKAGES = ("jax", "flax", "optax", "orbax-checkpoint", "tokenizers", "numpy")


def collect() -> dict:
  """The installed versions of PACKAGES (None when absent), python's and the device's kind."""
  import jax
  out = {}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  device = jax.devices()[0]
  out.update(python=platform.python_version(), device_kind=device.device_kind,
             platform=device.platform, devices=jax.device_count())
  return out


def read(workdir) -> dict:
  """{mode: versions} recorded in `workdir`; {} when none (or the file is unreadable)."""
  try:
    data = json.loads((epath.Path(workdir) / FILE_NAME).read_text())
  except (OSError, ValueError):
    return {}
  return data if isinstance(data, dict) else {}


def record(workdir, mode: str) -> dict:
  """Writes this process's versions under `mode` into workdir/versions.json; returns them."""
  import jax
  entry = dict(collect(), time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
  if jax.process_index() == 0:
    path = epath.Path(workdir) / FILE_NAME
    data = read(workdir)
    data[mode] = entry
    tmp = path.parent / f".{FILE_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
  return entry


def line(entry: dict) -> str:
  """One line for a summary: 'jax 0.10.2, flax 0.12.8, ..., python 3.11.9 on cpu (1 device)'."""
  libs = ", ".join(f"{name} {entry.get(name) or '-'}" for name in PACKAGES)
  n = entry.get("devices")
  return (f"{libs}, python {entry.get('python')} on {entry.get('device_kind')}"
          + (f" ({n} device{'s' if n != 1 else ''})" if n else ""))
