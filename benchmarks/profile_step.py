"""Where the jitted training step's time goes: its most expensive XLA operations.

  python benchmarks/profile_step.py [--config configs/cpu_proxy.py] [--objective hybrid]
      [--rows 64] [--seq_len 128] [--steps 3] [--top 10]

Builds the full step of babylm_jax.train.step (forward, backward, optimizer, EMA) at rows x
seq_len tokens on the batches of benchmarks/variants.py (random tokens, two documents a row,
masked by the config's masker, turned into its objective's batch), compiles it, and runs
`--steps` steps under `jax.profiler.trace`. On a CPU the trace holds one event per executed
HLO operation (a fusion, a library matmul, a copy), with its thread; their durations are
summed over the traced steps and divided by the number of steps. `share` is an operation's
time over the summed time of all operations (operations on the two cores overlap, so the
sum exceeds the wall time, which is printed beside it). Each operation is named by the JAX
source line in its HLO metadata (the compiled module's text), so that a fusion reads as the
line of model code it came from.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402

from babylm_jax.train.step import _pick  # noqa: E402
from train_step import fixed_shape_step, load_config  # noqa: E402
from variants import objective_batch  # noqa: E402

def hlo_sources(hlo_text: str) -> dict:
  """{instruction name: 'primitive [bwd] @ file:line function'} from a compiled module's text:
  the instruction's op_name and the innermost frame of its stack_frame_id."""
  tables, section = collections.defaultdict(dict), None
  for line in hlo_text.splitlines():
    if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
      section = line
      continue
    m = re.match(r"(\d+) (.*)", line) if section else None
    if m:
      tables[section][m.group(1)] = m.group(2)
    elif line.strip():
      section = None

  def frame(frame_id):
    loc = re.search(r"file_location_id=(\d+)", tables["StackFrames"].get(frame_id, ""))
    loc = tables["FileLocations"].get(loc.group(1), "") if loc else ""
    f = dict(re.findall(r"(\w+)=(\d+)", loc))
    if not f:
      return ""
    path = tables["FileNames"].get(f["file_name_id"], "?").strip('"')
    fn = tables["FunctionNames"].get(f["function_name_id"], "?").strip('"')
    return f" @ {os.path.basename(path)}:{f['line']} {fn}"

  # A fusion is named by the matmul it holds, if any (that is where its time goes), else by
  # its own metadata (its root's).
  dots, current = {}, None
  for line in hlo_text.splitlines():
    m = re.match(r"%?([\w.\-]+) \(.*\{$", line)
    if m:
      current = m.group(1)
    elif current and re.search(r" (dot|convolution)\(", line) and "metadata=" in line:
      dots.setdefault(current, line)

  def describe(line):
    m = re.search(r'metadata=\{op_name="([^"]*)"(.*)', line)
    if not m:
      return None
    op_name, rest = m.groups()
    sf = re.match(r"[^}]*?stack_frame_id=(\d+)", rest)
    bwd = " [bwd]" if "transpose(" in op_name else ""
    return op_name.split("/")[-1] + bwd + (frame(sf.group(1)) if sf else "")

  out = {}
  for line in hlo_text.splitlines():
    m = re.match(r"\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+)", line)
    if not m or m.group(1) in out:
      continue
    name, shape = m.groups()
    calls = re.search(r"calls=%?([\w.\-]+)", line)
    what = describe(dots.get(calls.group(1), line) if calls else line)
    if what:
      out[name] = f"{re.sub(r'[{][^}]*[}]', '', shape)} {what}"
  return out


def op_times(trace_dir: str) -> dict:
  """{hlo op: summed microseconds of its own} over every op event of the trace. An op that
  runs others (a cond, a while loop) is charged only the time its nested ops leave."""
  (path,) = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
  with gzip.open(path) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  by_thread = collections.defaultdict(list)
  for e in events:
    if e.get("ph") == "X" and "hlo_op" in e.get("args", {}):
      by_thread[e["tid"]].append((e["ts"], e["dur"], e["args"]["hlo_op"]))
  total = collections.Counter()
  for evs in by_thread.values():
    evs.sort(key=lambda e: (e[0], -e[1]))
    stack = []  # (end, op) of the ops that enclose the current one
    for ts, dur, op in evs:
      while stack and stack[-1][0] <= ts:
        stack.pop()
      if stack:
        total[stack[-1][1]] -= dur
      total[op] += dur
      stack.append((ts + dur, op))
  return total


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default=str(ROOT / "configs" / "cpu_proxy.py"))
  p.add_argument("--objective", default=None, help="override objective.kind")
  p.add_argument("--rows", type=int, default=64)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--top", type=int, default=10)
  args = p.parse_args()

  c = load_config(args.config)
  if args.objective:
    c.objective.kind = args.objective
  B, T = args.rows, args.seq_len
  train_step, state, batches, _ = fixed_shape_step(c, B, T, batch_fn=objective_batch)
  batches = [_pick(b) for b in batches]
  t0 = time.perf_counter()
  compiled = train_step.jitted.lower(state, batches[0], ()).compile()
  compile_s = time.perf_counter() - t0
  sources = hlo_sources(compiled.as_text())
  step = lambda state, batch: compiled(state, batch, ())  # noqa: E731
  for i in range(2):  # untraced: warm caches and threads
    state, m = step(state, batches[i])
    jax.block_until_ready((state, m))

  with tempfile.TemporaryDirectory() as tmp:
    walls = []
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for i in range(args.steps):
        t0 = time.perf_counter()
        state, m = step(state, batches[i % 2])
        jax.block_until_ready((state, m))
        walls.append(time.perf_counter() - t0)
    totals = op_times(tmp)
  all_us = sum(totals.values())
  rows = []
  for op, us in totals.most_common(args.top):
    rows.append(dict(op=op, ms=round(us / args.steps / 1e3, 2), share=round(us / all_us, 4),
                     source=sources.get(op, "?")))
  print(f"{args.config} objective={c.objective.kind} {B}x{T}: wall per step "
        f"{[round(w, 3) for w in walls]} s, op time per step {all_us / args.steps / 1e6:.3f} s"
        f", compile {compile_s:.1f} s, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
  for r in rows:
    print(f"{r['share']:7.1%} {r['ms']:9.2f} ms  {r['op']:<28} {r['source']}", file=sys.stderr)
  # The same times summed by the line of model code they came from (shape and op left out).
  by_line = collections.Counter()
  for op, us in totals.items():
    by_line[sources.get(op, op).split(" @ ")[-1]] += us
  lines = [dict(line=k, share=round(us / all_us, 4)) for k, us in by_line.most_common(args.top)]
  print("by source line:", file=sys.stderr)
  for r in lines:
    print(f"{r['share']:7.1%}  {r['line']}", file=sys.stderr)
  print(json.dumps(dict(config=args.config, objective=c.objective.kind, rows=B, seq_len=T,
                        steps=args.steps, wall_s=sorted(walls)[len(walls) // 2],
                        op_s=all_us / args.steps / 1e6, load=os.getloadavg()[0], top=rows,
                        by_line=lines)))


if __name__ == "__main__":
  main()
