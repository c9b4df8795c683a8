"""Ctrl-C (SIGINT) and SIGTERM: what a first and a second signal do.

`install()` (called once by the command line) makes a first Ctrl-C raise KeyboardInterrupt as
usual and also remember it, so that native code which swallows the exception (a tokenizer call,
a garbage-collector callback) is still stopped at the next `check()`. Inside `deferred()` (the
training loop) a first Ctrl-C or SIGTERM only sets a flag: the loop saves a checkpoint at the
end of the step and exits (code 130 for Ctrl-C, 0 for SIGTERM, a TPU preemption). A second
Ctrl-C always ends the process at once; files are only ever renamed into place when complete,
so what was saved before stays intact.
"""

from __future__ import annotations

import contextlib
import logging
import signal

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C

_state = dict(signal=None, defer=False)


def _on_sigint(signum, frame):
  _state["signal"] = "SIGINT"
  # A second Ctrl-C takes the default action: the kernel ends the process at once, whatever
  # it is waiting on (a save in progress), and the shell reports 130.
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  if _state["defer"]:
    logging.warning("Ctrl-C: saving a checkpoint after this step, then exiting; press Ctrl-C "
                    "again to exit at once (the previous checkpoint stays intact).")
    return
  raise KeyboardInterrupt


def _on_sigterm(signum, frame):  # installed only inside deferred()
  logging.warning("SIGTERM received: saving a checkpoint and exiting.")
  _state["signal"] = _state["signal"] or "SIGTERM"


def install():
  """Takes over SIGINT (unless it is ignored, as under nohup) from the main thread."""
  try:
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
      signal.signal(signal.SIGINT, _on_sigint)
  except ValueError:  # not the main thread
    pass


@contextlib.contextmanager
def deferred():
  """Inside: a first Ctrl-C or SIGTERM sets `requested()` instead of raising."""
  check()
  previous = {}
  try:
    for sig, handler in ((signal.SIGINT, _on_sigint), (signal.SIGTERM, _on_sigterm)):
      if signal.getsignal(sig) is not signal.SIG_IGN:
        previous[sig] = signal.signal(sig, handler)
  except ValueError:  # not the main thread (a notebook's worker): no signal handling
    pass
  _state["defer"] = True
  try:
    yield
  finally:
    _state["defer"] = False
    for sig, handler in previous.items():
      if not (sig == signal.SIGINT and _state["signal"] == "SIGINT"):  # keep SIG_DFL
        signal.signal(sig, handler)


def requested() -> str | None:
  """'SIGINT' or 'SIGTERM' once a stop was asked for, else None."""
  return _state["signal"]


def check():
  """Raises KeyboardInterrupt when a Ctrl-C arrived that something swallowed."""
  if _state["signal"] == "SIGINT" and not _state["defer"]:
    raise KeyboardInterrupt


def reset():
  """Forgets an earlier stop request (a library caller training twice in one process)."""
  _state.update(signal=None, defer=False)
