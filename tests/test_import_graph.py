"""The floor plan's rule: no import circle among the library's modules (docs/architecture.md).

Every `import` of the package counts, also those inside functions (a deferred import still ties
the two modules together).
"""
import ast
import os

import pytest

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "synthetic_pretraining"


def _modules():
  """{dotted module name: file path} of the library (tasks/ installs as synthetic_pretraining.tasks)."""
  found = {}
  for root_dir, prefix in ((os.path.join(REPO, PACKAGE), PACKAGE),
                           (os.path.join(REPO, "tasks"), f"{PACKAGE}.tasks")):
    for folder, _, files in os.walk(root_dir):
      for name in files:
        if name.endswith(".py"):
          rel = os.path.relpath(os.path.join(folder, name), root_dir)[:-3].replace(os.sep, ".")
          dotted = prefix if rel == "__init__" else f"{prefix}.{rel.removesuffix('.__init__')}"
          found[dotted] = os.path.join(folder, name)
  return found


def _imports(path, modules):
  """The library modules that the file at `path` imports (a package's own __init__ excluded)."""
  out = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
    for name in names:
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name and name != PACKAGE:
        out.add(name)
  return out


def _circles(graph):
  """Strongly connected components of more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_library_has_no_import_circle():
  modules = _modules()
  graph = {m: {i for i in _imports(path, modules) if i != m and not m.startswith(i + ".")}
           for m, path in modules.items()}
  assert len(graph) > 50  # the walk found the library
  assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle():
  assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
