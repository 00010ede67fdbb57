"""The rules of the Layout in `../shared/ARCHITECTURE.md`, checked on the source so they keep holding.

Every module of `mgll_data`, `mgll_train` and `bench` is parsed with `ast` (nothing is imported), and its
imports, string literals and line counts are held against the rules: the import graph has no cycle; the
CLI (`mgll_data/cli.py` + `mgll_data/commands/`) is the only joint between the data side and the
training side; the dataset folder's layout names are written in `mgll_data/dataset.py` alone; modules
and functions stay small enough to read in one sitting. Each rule is also run on a few made-up modules
that break it, so a pass means the check looked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mgll_data import dataset

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mgll_data", "mgll_train", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
CLI = ("mgll_data.cli", "mgll_data.commands")
# All of mgll_data that mgll_train may read: the schema and the dataset folder (the package's __init__
# holds only the version).
TRAIN_MAY_IMPORT = {"mgll_data", "mgll_data.schema", "mgll_data.dataset"}
# The dataset folder's names; `mgll_data/dataset.py` owns them and everything else goes through it.
LAYOUT_FILE_NAMES = {dataset.MANIFEST_FILE, dataset.REJECTS_FILE, dataset.CARD_FILE, dataset.LOCK_FILE,
                     dataset.LINKAGE_SUFFIX, *dataset.CHARTS.values()}
LAYOUT_FOLDER_NAMES = {dataset.DATA_DIR, dataset.CHARTS_DIR}
# The same word meaning something else there: (module, literal) -> what it names.
OTHER_MEANINGS = {
    ("mgll_data.demo.packaged", "data"): "the data folder inside the pydicom-data and deid-data packages",
    ("bench.bench_imaging", "data"): "the data folder inside the pydicom-data and deid-data packages",
    ("bench.bench_deid", "data"): "this repository's tests/data folder",
    ("bench.bench_labeller", "data"): "this repository's tests/data folder and the shared development data",
}


@dataclass(frozen=True)
class Module:
    name: str
    where: str  # the path, for messages
    lines: int
    tree: ast.Module

    @classmethod
    def parse(cls, name: str, where: str, source: str) -> Module:
        return cls(name, where, len(source.splitlines()), ast.parse(source, filename=where))

    @property
    def is_package(self) -> bool:
        return self.where.endswith("__init__.py")


def load_modules(root: Path = ROOT) -> dict[str, Module]:
    found = {}
    for top in PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = Module.parse(name, path.relative_to(root).as_posix(), path.read_text(encoding="utf-8"))
    return found


def _imported(module: Module, known: set[str]) -> set[str]:
    """What `module` imports anywhere (at the top, inside a function, under TYPE_CHECKING): `from a.b
    import c` is a.b.c when that is a module, and a.b when c is a name defined in a.b."""
    names = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.name.split(".")[: None if module.is_package else -1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(base)
    return names


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module -> the modules of this project it imports."""
    known = set(modules)
    return {name: {n for n in _imported(module, known) if n.split(".")[0] in PACKAGES}
            for name, module in modules.items()}


def _within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules importing
    themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def library_reaching_the_cli_or_train(modules: dict[str, Module], graph: dict[str, set[str]]) -> list[str]:
    """mgll_data modules outside the CLI that import the CLI (the library never drives its own command
    line) or mgll_train, or name a module of mgll_train in a string (an import by module path is one too)."""
    offenders = []
    for name, module in modules.items():
        if not name.startswith("mgll_data") or _within(name, CLI):
            continue
        offenders += [f"{name} imports {target}" for target in sorted(graph[name])
                      if _within(target, ("mgll_train", *CLI))]
        offenders += [f"{name} names {node.value!r}" for node in _string_literals(module.tree)
                      if _within(node.value.split(":")[0], {"mgll_train"})]
    return sorted(offenders)


def train_side_reaching_further(graph: dict[str, set[str]]) -> list[str]:
    """mgll_train imports of mgll_data beyond TRAIN_MAY_IMPORT, and imports of those beyond them (which
    mgll_train would pull in too)."""
    offenders = [f"{name} imports {target}" for name in sorted(graph) if name.startswith("mgll_train")
                 for target in sorted(graph[name]) if target.startswith("mgll_data") and target not in TRAIN_MAY_IMPORT]
    offenders += [f"{name} imports {target}" for name in sorted(TRAIN_MAY_IMPORT & set(graph))
                  for target in sorted(graph[name] - TRAIN_MAY_IMPORT)]
    return offenders


def _string_literals(tree: ast.Module) -> list[ast.Constant]:
    """String constants, docstrings and other bare string statements left out."""
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare]


_PATH_CALLS = {"Path", "joinpath", "join", "with_name"}


def _path_parts(tree: ast.Module) -> set[int]:
    """The ids of the string constants used as a path part: an operand of `/`, or an argument of Path()
    or of a method such as joinpath."""
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts.update(id(side) for side in (node.left, node.right))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in _PATH_CALLS:
            parts.update(id(arg) for arg in node.args)
    return parts


def layout_names_outside_dataset(modules: dict[str, Module]) -> list[str]:
    """String literals outside mgll_data/dataset.py holding a layout file name, or a layout folder name
    as a path part ("data/x", or "data" joined into a path)."""
    offenders = []
    for name, module in modules.items():
        if name == "mgll_data.dataset":
            continue
        path_parts = _path_parts(module.tree)
        for node in _string_literals(module.tree):
            folders = set(node.value.split("/")) if "/" in node.value or id(node) in path_parts else set()
            hits = {n for n in LAYOUT_FILE_NAMES if n in node.value} | (folders & LAYOUT_FOLDER_NAMES)
            offenders += [f"{module.where}:{node.lineno} {hit!r}" for hit in sorted(hits)
                          if (name, hit) not in OTHER_MEANINGS]
    return sorted(offenders)


def too_long(modules: dict[str, Module]) -> list[str]:
    offenders = [f"{m.where}: {m.lines} lines" for m in modules.values() if m.lines > MAX_MODULE_LINES]
    for module in modules.values():
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offenders.append(f"{module.where}:{node.lineno} {node.name}(): {length} lines")
    return offenders


MODULES = load_modules()
GRAPH = import_graph(MODULES)


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(GRAPH) == []


def test_outside_the_cli_mgll_data_imports_neither_the_cli_nor_mgll_train() -> None:
    assert library_reaching_the_cli_or_train(MODULES, GRAPH) == []


def test_mgll_train_reads_only_the_schema_and_the_dataset_of_mgll_data() -> None:
    assert train_side_reaching_further(GRAPH) == []


def test_the_layout_names_are_written_in_dataset_py_only() -> None:
    assert layout_names_outside_dataset(MODULES) == []


def test_no_module_over_400_lines_and_no_function_over_80() -> None:
    assert too_long(MODULES) == []


def test_the_cli_imports_its_commands_only_when_invoked() -> None:
    """`mgll --help` and every data command start without torch: cli.py names its commands by module
    path, and the demo command imports the training side inside the step that needs it."""
    assert not {n for n in GRAPH["mgll_data.cli"] if _within(n, ("mgll_data.commands", "mgll_train"))}
    data_commands = ", ".join(f"mgll_data.commands.{name}" for name in ("build", "validate", "card", "label", "demo"))
    code = (f"import sys, mgll_data.cli, {data_commands}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mgll_train'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _made_up(sources: dict[str, str]) -> dict[str, Module]:
    return {name: Module.parse(name, name.replace(".", "/") + ".py", source) for name, source in sources.items()}


def test_each_rule_finds_a_made_up_breach() -> None:
    modules = _made_up({
        "mgll_data": "",
        "mgll_data.reports": "from . import labels\n",
        "mgll_data.reports.labels": "from mgll_data.reports import vocabulary\n",
        "mgll_data.reports.vocabulary": "def f():\n    from mgll_data.reports.labels import x\n",
        "mgll_data.dataset": "import mgll_data.writer\nMANIFEST = 'manifest.json'\n",
        "mgll_data.writer": "import importlib\nimportlib.import_module('mgll_train.model')\n",
        "mgll_data.demo": "def run():\n    from mgll_data.cli import main\n",
        "mgll_data.cli": "COMMANDS = {'pretrain': 'mgll_data.commands.pretrain:pretrain'}\n",
        "mgll_data.commands.pretrain": "from mgll_train import trainer\n",
        "mgll_data.card": ("'''A docstring may say README.md.'''\nfrom pathlib import Path\n"
                           "def f(root, results):\n"
                           "    return Path(root) / 'data' / 'x.parquet', f'{root}/charts/x.png', results['charts']\n"),
        "mgll_train.trainer": ("from mgll_data.dataset import shard_paths\n"
                               "from mgll_data.commands.options import quiet_option\n"),
        "mgll_train.model": "def big():\n" + "    x = 1\n" * 80 + "\n" * 320,
    })
    graph = import_graph(modules)
    assert cycles(graph) == [["mgll_data.reports.labels", "mgll_data.reports.vocabulary"]]
    assert library_reaching_the_cli_or_train(modules, graph) == ["mgll_data.demo imports mgll_data.cli",
                                                                  "mgll_data.writer names 'mgll_train.model'"]
    assert train_side_reaching_further(graph) == ["mgll_train.trainer imports mgll_data.commands.options",
                                                  "mgll_data.dataset imports mgll_data.writer"]
    assert layout_names_outside_dataset(modules) == ["mgll_data/card.py:4 'charts'", "mgll_data/card.py:4 'data'"]
    assert too_long(modules) == ["mgll_train/model.py: 401 lines", "mgll_train/model.py:1 big(): 81 lines"]
