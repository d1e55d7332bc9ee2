"""The package's layers: a module imports only its own layer and those below it.

Oracle: the layer order that docs/architecture.md states, checked on every import statement of
every module (the abstract syntax tree, so lazy imports inside functions count too)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ghostnet"

LAYERS = {
    "version": 0, "io": 0, "errors": 0, "runtime": 0, "kernels": 0,  # no model knowledge
    "model": 1,                             # configuration, parameters, transfer, state, plasticity
    "engines": 2,                           # what settles the phases
    "network": 3,                           # the ghost network on an engine, mechanisms
    "checks": 4,                            # references, gradcheck, metrics, cross-checks
    "learning": 5,                          # data, trainer, runs, sweeps
    "figures": 6,                           # figures from saved results
    "cli": 7,                               # the command line
}
"""Layer of each top-level module or sub-package of ``ghostnet``; the package root (the public
API) and ``__main__`` sit above them all."""
TOP = {"__init__", "__main__"}


def _unit(module: str) -> str:
    """``ghostnet.engines.numba`` -> ``engines``; the root -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "ghostnet":  # from ghostnet import x: x may be a sub-package
                out += [(node.lineno, f"ghostnet.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, name))
    return [(line, n) for line, n in out if n == "ghostnet" or n.startswith("ghostnet.")]


def violations(path: Path, module: str) -> list[str]:
    """Imports in ``path`` (the source of ``module``) that reach a higher layer or the root."""
    unit = _unit(module)
    if unit in TOP:
        return []
    if unit not in LAYERS:
        return [f"{module}: not assigned to a layer (add it to LAYERS and docs/architecture.md)"]
    bad = []
    for line, name in _imports(path, module):
        target = _unit(name)
        if target in TOP:
            bad.append(f"{path.name}:{line}: {module} imports the package root ({name}); import "
                       "the module that defines the name")
        elif target not in LAYERS:
            bad.append(f"{path.name}:{line}: {module} imports {name}, which has no layer")
        elif LAYERS[target] > LAYERS[unit]:
            bad.append(f"{path.name}:{line}: {module} ({unit}, layer {LAYERS[unit]}) imports {name} "
                       f"({target}, layer {LAYERS[target]})")
    return bad


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield path, ".".join(parts)


def test_no_module_imports_a_higher_layer():
    found = [v for path, module in _modules() for v in violations(path, module)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("where, source", [
    ("kernels/numba_kernels.py", "from ghostnet.learning.training import train\n"),
    ("model/config.py", "def f():\n    from ghostnet.engines import numba\n"),
    ("engines/numba.py", "import ghostnet.network.network\n"),
    ("network/network.py", "from ghostnet import GhostNetwork\n"),
    ("engines/base.py", "from ..network import GhostNetwork\n"),
])
def test_the_check_sees_a_violation(tmp_path, where, source):
    """The checker itself: a deliberate upward import (absolute, lazy, relative, or through the
    root) in a copy of a real module is reported."""
    path = tmp_path / Path(where).name
    path.write_text((PACKAGE / where).read_text() + "\n" + source)
    module = "ghostnet." + where[:-3].replace("/", ".")
    assert violations(path, module), source


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert units - TOP <= set(LAYERS), sorted(units - TOP - set(LAYERS))
