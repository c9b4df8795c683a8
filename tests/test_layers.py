"""The package's modules import each other without circles, and the layers point one way.

Imports are read from the source (every `import` statement, those inside functions included:
a late import still ties two modules together), so a circle cannot hide behind a function-level
import.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "babylm_jax"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
      else:
        continue
      deps |= {t for t in targets if t in modules and t != name}
    graph[name] = deps
  return graph


def _cycle(graph):
  """One import circle as a list of modules, or None."""
  state = {}

  def visit(node, stack):
    state[node] = "open"
    stack.append(node)
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        return stack[stack.index(dep):] + [dep]
      if dep not in state:
        found = visit(dep, stack)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node, [])
      if found:
        return found
  return None


def test_no_module_of_the_package_imports_another_in_a_circle():
  # Package __init__ files that only re-export are skipped: they import their children by
  # construction.
  graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in _graph().items()}
  assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_nothing_below_the_command_line_imports_it():
  users = sorted(m for m, deps in _graph().items() if "babylm_jax.cli" in deps)
  assert users == [], users


def test_the_model_knows_nothing_of_training_evaluation_or_export():
  for name, deps in _graph().items():
    if name.startswith("babylm_jax.model"):
      bad = sorted(d for d in deps
                   if d.startswith(("babylm_jax.train", "babylm_jax.eval", "babylm_jax.export")))
      assert not bad, (name, bad)


def test_the_params_loader_and_the_mesh_sit_below_training_evaluation_and_export():
  """Eval, fine-tuning, export and generation load a run's model through checkpoint_params;
  it (and the mesh it lays parameters out on) must not reach up into any of them."""
  graph = _graph()
  for name in ("babylm_jax.checkpoint_params", "babylm_jax.mesh", "babylm_jax.generate"):
    bad = sorted(d for d in graph[name] if d.startswith(
        ("babylm_jax.train", "babylm_jax.eval", "babylm_jax.export", "babylm_jax.sweep")))
    assert not bad, (name, bad)
