"""Imports go one way: an entry point uses the core, the core never uses an entry point.

Layers, lowest first (a module may import its own layer and any layer below it):

    schemas             the wire models (events, API bodies): import no project code
    shared (the rest)   settings, clock, errors, logs, codes, tokens
    shared.messaging    broker names, topology, publishing, failure rules
    shared.persistence  tables, migrations, outbox, engine, transactions
    shared.expiry_rules the due and redeemable rules, on the tokens table
    shared.services     one transaction per call: issue, redeem, refund, dead letters...
    shared.bootstrap    the composition root: builds what a process needs
    api, workers        the entry points; neither imports the other
    cli                 the command line, which starts either of them

``bench`` and ``tests`` sit outside the layers and may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "shared", "api", "workers", "cli")

# (prefix, rank): the longest matching prefix decides a module's layer.
LAYERS: dict[str, int] = {
    "schemas": 0,
    "shared": 1,
    "shared.messaging": 2,
    "shared.persistence": 3,
    "shared.expiry_rules": 4,
    "shared.services": 5,
    "shared.bootstrap": 6,
    "api": 7,
    "workers": 7,
    "cli": 8,
}


def layer_of(module: str) -> str | None:
    """The layer prefix a dotted module name belongs to, or None outside the project."""
    best = None
    for prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best):
                best = prefix
    return best


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an import statement names (top level or inside a function), with its
    line. ``from a import b`` counts as ``a.b``: ``b`` may be a submodule."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(module: str, imports: list[tuple[int, str]]) -> list[str]:
    """The imports of ``module`` that reach a higher layer, or a peer entry point."""
    own = layer_of(module)
    assert own is not None, module
    bad = []
    for line, name in imports:
        target = layer_of(name)
        if target is None or target == own:
            continue
        if LAYERS[target] >= LAYERS[own]:  # higher, or the peer entry point
            bad.append(f"{module}:{line} imports {name} ({own} may not use {target})")
    return bad


def project_modules() -> list[tuple[str, Path]]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules.append((".".join(parts), path))
    return modules


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for module, path in project_modules():
        is_package = path.name == "__init__.py"
        name = module.removesuffix(".__init__")
        bad += violations(name, imported_names(path.read_text(), name, is_package))
    assert not bad, "\n".join(bad)


def test_the_layers_cover_every_project_package() -> None:
    modules = project_modules()
    assert len(modules) > 50  # the walk found the code
    assert {layer_of(m) for m, _ in modules} == set(LAYERS)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("shared.settings", "from api import app"),
        ("shared.services.refund", "import workers.relay"),
        ("shared.persistence.outbox", "from shared.services import refund"),
        ("shared.persistence.outbox", "from shared import services"),
        ("shared.messaging.topology", "def f():\n    from shared.persistence import tables"),
        ("schemas.events", "from shared.clock import Clock"),
        ("api.app", "from workers import worker"),
        ("workers.worker", "from cli import main"),
        ("shared.services.refund", "from ..bootstrap import Container"),
    ],
)
def test_the_check_catches_an_upward_import(module: str, source: str) -> None:
    assert violations(module, imported_names(source, module, is_package=False))


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("cli.worker_command", "from workers.worker import run"),
        ("api.app", "from shared.services import refund"),
        ("shared.services.refund", "from shared.persistence.outbox import event_headers"),
        ("shared.services.refund", "from .views import Refund"),
        ("shared.persistence.outbox", "from shared.messaging.names import H_REQUEST_ID"),
        ("shared.clock", "import sqlalchemy"),
    ],
)
def test_the_check_allows_a_downward_import(module: str, source: str) -> None:
    assert not violations(module, imported_names(source, module, is_package=False))
