"""The package graph the architecture promises: each package imports only
downward, the chain-independent parts never import a chain's, and nothing
reaches into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOP = ("config", "db", "indexer", "settlement", "delivery", "api", "daemon")
# What each top-level package may import besides itself.
ALLOWED = {
    "config": set(),
    "db": {"config"},
    "indexer": {"config", "db"},
    "settlement": {"config", "db", "indexer"},
    "delivery": {"config", "db", "indexer", "settlement"},
    "api": {"config", "db", "indexer", "settlement", "delivery"},
    "daemon": {"config", "db", "indexer", "settlement", "delivery", "api"},
}
# Inside a package: a module under the key may not import the listed subpackages.
FORBIDDEN_INSIDE = {
    "indexer": ("indexer.evm", "indexer.xrpl"),  # shared pieces know no chain
    "indexer.evm": ("indexer.xrpl",),
    "indexer.xrpl": ("indexer.evm",),
    "settlement.ledger": ("settlement.reconcile", "settlement.payouts"),
    "settlement.payouts": ("settlement.payouts.evm", "settlement.payouts.xrpl", "settlement.reconcile"),
    "settlement.payouts.evm": ("settlement.payouts.xrpl", "settlement.reconcile"),
    "settlement.payouts.xrpl": ("settlement.payouts.evm", "settlement.reconcile"),
    # Incoming payments sit beside the ledger: never the outgoing pipeline.
    "settlement.invoices": ("settlement.payouts", "settlement.reconcile", "settlement.signin"),
    "settlement.signin": ("settlement.payouts", "settlement.reconcile", "settlement.invoices"),
    "settlement.intents": ("settlement.payouts.evm", "settlement.payouts.xrpl", "settlement.reconcile"),
}


def modules():
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            yield ".".join(parts), path


def imports_of(name: str, path: Path):
    """(imported module, imported names) for every import, top level or inside functions."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, [a.name for a in node.names]


def package_of(module: str) -> str:
    """The deepest key of FORBIDDEN_INSIDE that holds the module (its package rule)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in FORBIDDEN_INSIDE and cand != module or (cand in FORBIDDEN_INSIDE and i == len(parts)):
            return cand
    return ""


ALL = list(modules())


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_imports_only_downward(name, path):
    top = name.split(".")[0]
    for mod, _ in imports_of(name, path):
        other = mod.split(".")[0]
        if other in TOP and other != top:
            assert other in ALLOWED[top], f"{name} imports {mod}: {top} may import only {sorted(ALLOWED[top])}"


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_chain_independent_parts_import_no_chain(name, path):
    rule = package_of(name)
    # a module directly in the package (not in a subpackage of its own rule)
    for mod, _ in imports_of(name, path):
        for banned in FORBIDDEN_INSIDE.get(rule, ()):
            if name.startswith(banned + ".") or name == banned:
                continue
            assert not (mod == banned or mod.startswith(banned + ".")), f"{name} imports {mod}"


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_private_names_of_other_modules(name, path):
    for mod, names in imports_of(name, path):
        if mod.split(".")[0] in TOP and mod != name:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{name} imports private {private} from {mod}"


def test_the_rules_see_the_tree():
    """The walk finds the subpackages the rules name (a renamed package would silently pass)."""
    names = {n for n, _ in ALL}
    for pkg in FORBIDDEN_INSIDE:
        assert pkg in names, pkg
