"""The package's layout is its architecture: checked, not just drawn.

- No import circle of any kind between the package's modules (``TYPE_CHECKING`` imports
  and imports inside functions count too).
- Each subpackage imports only the layers below it, and another subpackage only through
  its front door (its ``__init__``), never a private module.
- No module is much over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import omnimind_trio

ROOT = Path(omnimind_trio.__file__).parent
PACKAGE = "omnimind_trio"

MAY_IMPORT = {
    "models": {"exceptions"},
    "scheduling": {"models", "exceptions"},
    "execution": {"models", "exceptions"},
    "store": {"models", "exceptions"},
    "config": {"models", "scheduling", "store", "sensors"},
    "dbus": set(),
    "notify": {"models", "dbus"},
    "sensors": {"models", "dbus"},
    "credentials": {"config"},
    "daemon": {
        "models",
        "exceptions",
        "config",
        "scheduling",
        "execution",
        "store",
        "notify",
        "sensors",
        "_version",  # a node's version (GET /daemon/nodes)
    },
    "http": {"daemon", "models", "exceptions", "config", "credentials", "_version"},
    # cli: `omnimind next` previews cron times with the scheduler's own calendar.
    "cli": {
        "daemon",
        "http",
        "models",
        "exceptions",
        "config",
        "credentials",
        "scheduling",
        "_version",
    },
}
"""Which top-level parts each part may import."""
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports from the package, resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith(PACKAGE):
                modules = {  # ``from . import _connection`` imports a module
                    f"{target}.{alias.name}"
                    for alias in node.names
                    if (ROOT.parent / f"{target}.{alias.name}".replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                }
                found |= modules if len(modules) == len(node.names) else {target, *modules}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGE)}
    return found - {name}


GRAPH = {module_name(p): imports(p) for p in ROOT.rglob("*.py")}


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def test_there_is_no_import_circle() -> None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for target in GRAPH.get(module, ()):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in GRAPH:
        visit(module)


def test_each_part_imports_only_the_layers_below_through_their_front_doors() -> None:
    for module, targets in GRAPH.items():
        source = part(module)
        if source in ("__init__", "__main__"):
            continue
        for target in targets:
            into = part(target)
            if into == source:
                continue
            assert into in MAY_IMPORT.get(source, set()), f"{module} imports {target}"
            # Another part's private module is off limits: its front door only.
            assert not any(p.startswith("_") for p in target.split(".")[2:]), (
                f"{module} imports {target}, behind {PACKAGE}.{into}'s front door"
            )


def test_no_module_is_much_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
