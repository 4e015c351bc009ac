"""The package's layers import only downwards: core <- training, aws <- mlops <- api <- functions.

A module may import its own layer and the layers below it, never one above: the AWS side never
reaches into the use cases, MLOps never into the API, and nothing in the package into a handler.
``training`` (Keras) sits beside ``aws`` on the core: of the layers above it only ``mlops`` may use
it (the retrain image), and the serving import path never does (``test_packaging`` checks that in a
fresh interpreter). Imports inside functions count too: a lazy import is still a dependency.
"""

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "layers" / "classifier" / "classifier"
# What each layer may import from the package (besides itself).
ALLOWED = {
    "core": {"core"},
    "training": {"core", "training"},
    "aws": {"core", "aws"},
    "mlops": {"core", "aws", "training", "mlops"},
    "api": {"core", "aws", "mlops", "api"},
    "functions": {"core", "aws", "mlops", "api", "functions"},
}
SUBPACKAGES = {"training", "aws", "mlops", "api"}


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside ``classifier`` (or ``functions``)."""
    parts = module.split(".")
    if parts[0] == "functions":
        return "functions"
    if parts == ["classifier", "__main__"]:
        return "training"  # ``python -m classifier`` is the training command line
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "core"


def imported_modules(path: Path) -> set[str]:
    """Every ``classifier``/``functions`` module ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from classifier import aws`` imports the submodule classifier.aws
            found |= (
                {f"{node.module}.{alias.name}" for alias in node.names}
                if node.module == "classifier"
                else {node.module}
            )
    return {name for name in found if name.split(".")[0] in ("classifier", "functions")}


def module_name(path: Path) -> str:
    root = PACKAGE.parent if PACKAGE in path.parents else REPO
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(REPO / "functions").rglob("app.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(REPO)))
def test_a_module_imports_only_its_own_layer_and_those_below(path):
    layer = layer_of(module_name(path))
    upward = {name for name in imported_modules(path) if layer_of(name) not in ALLOWED[layer]}
    assert not upward, f"{module_name(path)} ({layer}) imports a higher layer: {sorted(upward)}"


def test_the_rule_catches_an_upward_import(tmp_path):
    # given an AWS-side module that imports the API layer
    source = tmp_path / "bad.py"
    source.write_text("from classifier.api import records\nimport classifier.mlops.jobs\n")
    # then the check names both imports as foreign to the aws layer
    imported = imported_modules(source)
    assert {layer_of(name) for name in imported} == {"api", "mlops"}
    assert all(layer_of(name) not in ALLOWED["aws"] for name in imported)


def test_every_subpackage_declares_what_it_offers():
    for name in SUBPACKAGES:
        init = PACKAGE / name / "__init__.py"
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"classifier.{name} says what it holds"
        exported = next(
            node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
        )
        names = [element.value for element in exported.elts]
        assert names, f"classifier.{name}.__all__ lists what it offers"
        package = importlib.import_module(f"classifier.{name}")
        missing = [n for n in names if not (PACKAGE / name / f"{n}.py").is_file() and not hasattr(package, n)]
        assert not missing, f"classifier.{name}.__all__ names what it does not hold: {missing}"


def test_every_test_module_has_a_basename_of_its_own():
    # pytest imports test modules by basename (rootdir mode, no packages): a second tests/*/test_x.py
    # stops the whole run at collection
    names = [path.name for path in (REPO / "tests").rglob("test_*.py")]
    assert sorted(set(names)) == sorted(names), sorted(n for n in set(names) if names.count(n) > 1)
