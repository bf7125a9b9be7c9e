"""The layout's rule, checked on the code's own imports (with `ast`, as import-linter's "layers" contract would):
a module imports only its own floor and the floors below it, and no imports go round in a circle.
Every import counts, a function's lazy one too: a circle through a lazy import is still a circle."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("theory", "bench", "analysis")

# Lowest floor first. A module belongs to the floor of its longest matching prefix.
FLOORS = [
    ("theory",),
    ("bench.store", "bench.env", "bench.modes", "bench.timing.stats"),        # leaves: files, metadata, mode table
    ("bench.devices",),                                                          # the one device-specific layer
    ("bench.model", "bench.sweep"),                                              # what a point builds and runs
    ("bench.timing", "bench.ceilings"),                                          # trajectories, repeats, ceilings
    ("bench.profiling",),                                                        # what the profiler sees
    ("bench.kernels",),                                                          # ops timed alone
    ("bench.point",),                                                            # one point, top to bottom
    ("bench.launch",),                                                           # where a point runs
    ("bench.run",),                                                              # a run directory, start to end
    ("analysis",),                                                               # reads results/ only
    ("bench.cli", "bench.__main__", "bench.comms", "bench.tp", "bench.kernels.cli", "bench.kernels.versus",
     "bench.kernels.vsdb", "bench.kvmem", "bench.kvreport",
     "theory.cli", "theory.__main__", "analysis.cli", "analysis.__main__"),  # entry points
]
# analysis reads results/; the one sanctioned arrow into bench is the torch-free statistics (and the report is
# what `python -m bench run` ends with, an entry point's call).
ANALYSIS_MAY_IMPORT = ("theory", "analysis", "bench.timing.stats")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules `path` imports (`from a.b import c` counts a.b.c when that is a module)."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def floor_of(name: str) -> int | None:
    if name == "bench":                     # the package itself (environment defaults only): a leaf
        return 1
    best, floor = -1, None
    for i, prefixes in enumerate(FLOORS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, floor = len(p), i
    return floor


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(p, m, known) for m, p in mods.items()}


def test_every_module_has_a_floor():
    assert [m for m in modules() if floor_of(m) is None] == []


def test_no_module_imports_a_higher_floor():
    up = [f"{m} -> {t}" for m, ts in graph().items() for t in sorted(ts)
          if floor_of(t) > floor_of(m) and floor_of(m) != len(FLOORS) - 1]
    assert up == []


def test_analysis_reads_results_not_bench():
    bad = [f"{m} -> {t}" for m, ts in graph().items() if floor_of(m) == FLOORS.index(("analysis",))
           for t in sorted(ts) if not any(t == p or t.startswith(p + ".") for p in ANALYSIS_MAY_IMPORT)]
    assert bad == []


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    # A package's __init__ that re-exports its modules is not a circle of roles: leave the packages out.
    g = graph()
    mods = modules()
    g = {m: {t for t in ts if mods[t].name != "__init__.py"} for m, ts in g.items() if mods[m].name != "__init__.py"}
    assert cycles(g) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_400_lines():
    long = [(m, n) for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 400]
    assert long == []
