"""What a run writes about itself: metrics.jsonl, TensorBoard events, the progress line, plots.

Only process 0 writes. On resume, records of steps after the restored checkpoint (written by a
run that was killed later) are dropped, and a fresh start drops them all, so every step
appears once in metrics.jsonl.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time

import jax
from etils import epath


def _summary_writer(folder: str):
  """tensorboardX's SummaryWriter, imported without torch.

  tensorboardX imports torch whenever it is installed (the export extra installs it), only to
  accept torch tensors; we log Python floats. That import cost 2.6 s and a few hundred MB in
  every training process, so torch is hidden while tensorboardX loads (unless something
  already imported it, which this does not undo).
  """
  hide = "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
  try:
    from tensorboardX import SummaryWriter
  finally:
    if hide:
      del sys.modules["torch"]
  return SummaryWriter(folder)


class MetricsWriter:

  def __init__(self, workdir, total_steps: int, resume_step: int = 0, unit: str = "words"):
    self.active = jax.process_index() == 0
    self.unit = unit  # what words_seen counts (config.word_unit), for the plots' axes
    self.path = epath.Path(workdir) / "metrics.jsonl"
    self.total_steps = total_steps
    self.records: list[dict] = []
    self._tb = None
    self._bar = None
    self._start_step = resume_step
    self._start_time = time.time()
    if not self.active:
      return
    # resume_step 0 is a fresh start (checkpoints follow steps): the records of a run killed
    # before its first checkpoint (its step-0 validation and learning-curve point) go, as the
    # new run writes them again.
    if self.path.exists() and resume_step > 0:
      for line in self.path.read_text().splitlines():
        if line.strip():
          rec = json.loads(line)
          if rec.get("step", 0) <= resume_step:
            self.records.append(rec)
    self._rewrite()
    self._local = not str(workdir).startswith("gs://")
    try:
      self._tb = _summary_writer(str(epath.Path(workdir) / "tb"))
    except Exception:  # TensorBoard is optional; metrics.jsonl is the record
      self._tb = None
    if sys.stdout.isatty():
      from tqdm import tqdm
      self._bar = tqdm(total=total_steps, initial=resume_step, unit="step", dynamic_ncols=True)

  def _rewrite(self):
    tmp = self.path.parent / (self.path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
    tmp.replace(self.path)

  def write(self, record: dict, *, kind: str = "train"):
    """Appends one record (a JSON line) and mirrors it to TensorBoard and the console."""
    if not self.active:
      return
    record = {k: _plain(v) for k, v in record.items()}
    self.records.append(record)
    if self._local:
      with self.path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    else:  # object stores cannot append
      self._rewrite()
    step = record["step"]
    if self._tb is not None:
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(f"{kind}/{k}", v, step)
        elif k == kind and isinstance(v, dict):  # the record's own group of scalars
          for kk, vv in v.items():
            if isinstance(vv, (int, float)) and math.isfinite(vv):
              self._tb.add_scalar(f"{k}/{kk}", vv, step)
      self._tb.flush()
    self._console(record, kind)

  def _console(self, r: dict, kind: str):
    if kind == "train":
      done = r["step"] - self._start_step
      elapsed = time.time() - self._start_time
      eta = elapsed / max(done, 1) * (self.total_steps - r["step"])
      line = (f"step {r['step']}/{self.total_steps} loss {r['loss']:.4f} "
              f"(masked {_fmt(r['masked_loss'])}, causal {_fmt(r['causal_loss'])}) "
              f"words {r['words_seen']:,} {r['tokens_per_s']:,.0f} tok/s mfu {r['mfu']:.2f} "
              f"eta {_hms(eta)}")
      if self._bar is not None:
        self._bar.n = r["step"]
        self._bar.set_postfix_str(f"loss {r['loss']:.3f} {r['tokens_per_s']:,.0f} tok/s",
                                  refresh=False)
      self._print(line)
    elif kind == "zero_shot":
      accuracy = " ".join(f"{k} {100 * v:.1f}" for k, v in r["zero_shot"].items())
      self._print(f"step {r['step']} words {r['words_seen']:,} zero-shot accuracy: {accuracy} "
                  f"({r['zero_shot_s']:.1f} s)")
    else:
      langs = "".join(f", {k[len('val_loss_'):]} {_fmt(v)}" for k, v in r.items()
                      if k.startswith("val_loss_"))
      self._print(f"step {r['step']} validation loss {r['val_loss']:.4f} (masked "
                  f"{_fmt(r['val_masked_loss'])}, causal {_fmt(r['val_causal_loss'])}{langs})")

  def _print(self, line: str):
    """A log line above the progress bar (tqdm clears and redraws it), never inside it."""
    if self._bar is not None:
      self._bar.write(line)
      self._bar.refresh()
    else:
      print(line, flush=True)

  @contextlib.contextmanager
  def console(self):
    """While the bar is drawn, log records are written above it as well."""
    if self._bar is None:
      yield
      return
    from tqdm.contrib.logging import logging_redirect_tqdm
    with logging_redirect_tqdm():
      yield

  def close(self):
    if self._bar is not None:
      self._bar.close()
    if self._tb is not None:
      self._tb.close()


def _plain(v):
  if hasattr(v, "item"):
    v = v.item()
  return v


def _fmt(v) -> str:
  return "-" if v is None else f"{v:.3f}"


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def plot_losses(workdir, records: list[dict], unit: str = "words"):
  """workdir/plots/loss.png: training and validation loss against words seen (`unit`), and
  each language's validation loss on a multilingual run."""
  # A bare Figure, not pyplot: no global backend switch (notebooks keep drawing inline).
  from matplotlib.figure import Figure

  train = [(r["words_seen"], r["loss"]) for r in records if "loss" in r]
  val = [(r["words_seen"], r["val_loss"]) for r in records if "val_loss" in r]
  fig = Figure(figsize=(7, 4.5))
  ax = fig.subplots()
  if train:
    ax.plot(*zip(*train), label="training loss", lw=1.2)
  if val:
    ax.plot(*zip(*val), "o-", label="validation loss", lw=1.5)
  languages = sorted({k for r in records for k in r if k.startswith("val_loss_")})
  for key in languages:
    points = [(r["words_seen"], r[key]) for r in records if r.get(key) is not None]
    ax.plot(*zip(*points), "s--", label=f"validation loss, {key[len('val_loss_'):]}", lw=1,
            ms=3)
  ax.set_ylabel("loss (nats per target)")
  _save(fig, ax, workdir, "loss.png", unit)


def zero_shot_series(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
  """'<suite>/<backend>' -> [(words seen, macro accuracy)] from the learning-curve records."""
  series: dict[str, list] = {}
  for r in records:
    for name, acc in r.get("zero_shot", {}).items():
      series.setdefault(name, []).append((r["words_seen"], acc))
  return series


def plot_zero_shot(workdir, records: list[dict], chance: dict[str, float], unit: str = "words"):
  """workdir/plots/zero_shot.png: each suite's macro accuracy against words seen, with the
  chance level of each suite as a dotted line."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(7, 4.5))
  ax = fig.subplots()
  for name, points in zero_shot_series(records).items():
    line, = ax.plot(*zip(*[(w, 100 * a) for w, a in points]), "o-", label=name, lw=1.5, ms=3)
    if name in chance:
      ax.axhline(100 * chance[name], color=line.get_color(), ls=":", lw=1)
  ax.set_ylabel("macro accuracy (%); dotted: chance")
  _save(fig, ax, workdir, "zero_shot.png", unit)


def _save(fig, ax, workdir, name: str, unit: str = "words"):
  """Finishes a one-panel plot against words seen and writes it to workdir/plots/name."""
  ax.set_xlabel(f"{unit} seen")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  out = epath.Path(workdir) / "plots"
  out.mkdir(parents=True, exist_ok=True)
  with (out / name).open("wb") as f:
    fig.savefig(f, dpi=120)
