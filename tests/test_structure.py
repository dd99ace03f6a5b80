"""The package draws the architecture: the pure core is whatever lives in its folders, edges import only lower
layers, and nothing imports in a cycle (imports are parsed, not executed)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "harness"
PURE = ("core", "meter", "dialects")
# Layers, lowest first: a module may import its own layer and lower ones, never a higher one.
LAYERS: tuple[tuple[str, ...], ...] = (
    PURE,
    ("host", "net"),
    ("notify", "vtn"),
    ("sinks",),
    ("reports",),
    ("run",),
    ("cli", "__main__", "__init__"),
)
IO_MODULES = {
    "asyncio", "socket", "ssl", "selectors", "multiprocessing", "threading", "subprocess", "signal",
    "http", "urllib.request", "concurrent", "shutil", "tempfile", "sqlite3", "time", "logging",
}
THIRD_PARTY_OK = {"numpy"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG).with_suffix("").parts
        name = ".".join(("harness", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def _part(module: str) -> str:
    """The top-level folder or module of harness a module belongs to (`harness.core.fleet` → `core`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _rank(module: str) -> int:
    part = _part(module)
    for rank, layer in enumerate(LAYERS):
        if part in layer:
            return rank
    raise AssertionError(f"{module}: its folder {part!r} is in no layer of tests/test_structure.py")


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute imports of a module; with top_level_only, those run at import time (not inside functions or
    `if TYPE_CHECKING:`). `from harness.core import fleet` counts as importing `harness.core.fleet`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    known = _modules()
    mods: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known.keys()
            mods |= subs
            if len(subs) < len(node.names):  # names from the module itself, not only its submodules
                mods.add(node.module)
    return mods


def _harness_targets(mods: set[str], known: dict[str, Path]) -> set[str]:
    # The root package holds only __version__ and a lazy public surface: importing it is no layer edge.
    return {m for m in mods if m in known and m != "harness"}


def test_every_module_has_a_layer() -> None:
    """A new folder or top-level module must be placed in a layer here before it can land."""
    for name in _modules():
        _rank(name)


def test_core_is_every_module_in_the_pure_folders() -> None:
    """The structural check sees the core by folder (no hand-kept list), and the folders are not empty."""
    core = [n for n in _modules() if _part(n) in PURE]
    assert len(core) >= 25
    assert "harness.core.histogram" in core and "harness.meter.model" in core and "harness.dialects.openadr301" in core


def test_core_imports_only_stdlib_numpy_and_core() -> None:
    """No pure module imports an I/O module, a third-party package other than numpy, or an edge module."""
    bad: list[str] = []
    for name, path in _modules().items():
        if _part(name) not in PURE:
            continue
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top == "harness":
                if mod != "harness" and _part(mod) not in PURE:
                    bad.append(f"{name}: {mod} (edge module)")
            elif mod in IO_MODULES or top in IO_MODULES:
                bad.append(f"{name}: {mod} (I/O)")
            elif top not in sys.stdlib_module_names and top not in THIRD_PARTY_OK and top != "__future__":
                bad.append(f"{name}: {mod} (third-party)")
    assert bad == []


def test_no_module_imports_a_higher_layer() -> None:
    """Edges import the core and lower edges, never the reverse (lazy imports inside functions count too)."""
    known = _modules()
    bad = [
        f"{name} (layer {_rank(name)}) imports {target} (layer {_rank(target)})"
        for name, path in known.items()
        for target in _harness_targets(_imports(path), known)
        if _rank(target) > _rank(name)
    ]
    assert bad == []


def test_no_import_cycles() -> None:
    """Module-level imports form no cycle (a cycle would make import order matter)."""
    known = _modules()
    graph = {n: _harness_targets(_imports(p, top_level_only=True), known) - {n} for n, p in known.items()}
    # A package's __init__ is imported by its submodules implicitly; only explicit edges count here.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_every_subpackage_ships_in_the_wheel() -> None:
    """pyproject lists packages explicitly (profiles/ is mapped in): a new subpackage must be listed too."""
    import tomllib

    root = PKG.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"harness." + str(d.relative_to(PKG)).replace("/", ".") for d in PKG.rglob("*") if (d / "__init__.py").is_file()}
    assert found | {"harness", "harness.profiles"} <= listed


MAX_MODULE_LINES = 400  # a module reads at a sitting
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_read_at_a_sitting() -> None:
    """No module over 400 lines, no function over 60 (from `def` to its last line): no exceptions (the allow-lists
    of the day the limits landed are empty and gone)."""
    root = PKG.parent
    long_modules, long_functions = [], []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
    assert (long_modules, long_functions) == ([], [])




# Cross-cutting tests live at the top of tests/: the structure of the package, the README's promises, fuzzing of
# inputs that reach several layers.
TOP_LEVEL_TESTS = {"test_structure.py", "test_readme.py", "test_fuzz.py"}


def test_tests_mirror_the_package() -> None:
    """Each test module lives in the tests/ folder named for the package folder it tests (tests/core/ for
    harness/core/, ...), and every tests/ folder names a package folder: a new test has one obvious home."""
    tests = PKG.parent / "tests"
    packages = {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file()}
    folders = {d.name for d in tests.iterdir() if d.is_dir() and any(d.glob("test_*.py"))}
    assert folders <= packages, folders - packages
    assert {p.name for p in tests.glob("test_*.py")} == TOP_LEVEL_TESTS
