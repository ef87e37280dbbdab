"""The app's floors: the faces (the CLI and the TUI) reach the library, the engine and the
photo readers only through the app layer (tagger.api), and SQL runs only in the library."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import ROOT

FACES = sorted([*(ROOT / "tagger" / "cli").glob("*.py"), *(ROOT / "tagger" / "tui").glob("*.py")])
# What a face may import of the project: the app layer, its own modules, the version, and
# the errors and console helpers both command lines share.
ALLOWED = re.compile(r"^(tagger(\.api|\.__version__|\.(cli|tui)(\..+)?)?|trainer\.(errors|console))$")


def _imports(path: Path, root: Path = ROOT) -> list[str]:
    """Every module ``path`` imports from the project, absolute, wherever the import sits."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            # `from .. import api` names a module: count it as the module it names.
            found += [f"{module}.{a.name}" if node.module is None else module for a in node.names]
    return [m for m in found if m.split(".")[0] in ("tagger", "trainer")]


def test_the_faces_reach_the_app_only_through_its_layer():
    reached = {f"{p.relative_to(ROOT)}: {m}" for p in FACES for m in _imports(p) if not ALLOWED.match(m)}
    assert not reached, "the CLI and the TUI call tagger.api, nothing below it:\n" + "\n".join(sorted(reached))


def test_the_import_check_sees_a_face_reaching_below(tmp_path):
    tree = tmp_path / "tagger" / "tui"
    tree.mkdir(parents=True)
    source = "from ..library import Library\nfrom .. import api\nfrom .widgets import Page\nimport trainer.model\n"
    (tree / "x.py").write_text(source)
    modules = _imports(tree / "x.py", tmp_path)
    assert modules == ["tagger.library", "tagger.api", "tagger.tui.widgets", "trainer.model"]
    assert [m for m in modules if not ALLOWED.match(m)] == ["tagger.library", "trainer.model"]


SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE|ALTER TABLE)\b")


def test_sql_lives_only_in_the_library():
    outside = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted([*(ROOT / "tagger").rglob("*.py"), *(ROOT / "bench").glob("*.py")])
        if "library" not in p.relative_to(ROOT).parts and p.name != "library.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if SQL.search(line) or ".db.execute(" in line
    ]
    assert not outside, "SQL outside tagger/library:\n" + "\n".join(outside)
