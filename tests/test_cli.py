"""The console scripts are installed and answer, offline."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import entry_point


def test_epsilon_train_help():
    result = subprocess.run([entry_point("epsilon-train"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "info" in result.stdout


def test_epsilon_tag_version():
    result = subprocess.run([entry_point("epsilon-tag"), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("epsilon-tag ")


def test_ci_runs_the_readme_test_command():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:]]
    setup = [b for b in blocks if b.startswith("python3 -m venv")]
    assert len(setup) == 2, "the README has exactly two set-up commands"
    assert setup[1] in (root / ".ci" / "run").read_text().splitlines()


def test_every_package_is_installed():
    """A subpackage missing from pyproject's list is missing from `pip install .`."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for top in ("tagger", "trainer")
        for p in (root / top).rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"


@pytest.mark.parametrize(
    "app_name, args, option",
    [
        ("tagger", ["vocab", "list", "--kind", "seeen"], "--kind"),
        ("tagger", ["vocab", "list", "--sort", "size"], "--sort"),
        ("tagger", ["export", "--xmp", "--naming", "lightroom"], "--naming"),
        ("trainer", ["evaluate", "--dataset", "coc0", "--data", "."], "--dataset"),
        ("trainer", ["corel5k", "--data", ".", "--method", "clip"], "--method"),
        (
            "trainer",
            ["evaluate", "--method", "conse", "--dataset", "coco", "--data", ".", "--class-naming", "all"],
            "--class-naming",
        ),
    ],
)
def test_a_mistyped_choice_fails_before_anything_runs_and_help_lists_the_choices(app_name, args, option):
    from typer.testing import CliRunner

    from tagger.cli import app as tag_app
    from trainer.cli import app as train_app

    app = tag_app if app_name == "tagger" else train_app
    ran = CliRunner().invoke(app, args)
    assert ran.exit_code == 2 and f"Invalid value for '{option}'" in ran.output and "is not one of" in ran.output
    command = [a for a in args if not a.startswith("-")][: 2 if args[0] == "vocab" else 1]
    shown = CliRunner(env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"}).invoke(app, [*command, "--help"])
    choices = {
        "--kind": "seen|zero-shot",
        "--sort": "count|name",
        "--naming": "full|stem",
        "--method": "epsilon|fast0tag|conse",
        "--dataset": "nus-wide|open-images|corel5k|coco",
        "--class-naming": "first|lemmas",
    }[option]
    assert choices in shown.output, shown.output


def test_a_bug_shows_its_traceback_and_a_users_mistake_one_line(tmp_path, monkeypatch):
    """Only errors meant for people become a tidy "Error:" (exit 2); a numpy shape bug is a
    bug, and says so above its traceback."""
    from typer.testing import CliRunner

    import tagger.search
    from tagger.cli import app, bug
    from tagger.library import Library
    from trainer.errors import InputError, UserError

    db = tmp_path / "lib.db"
    Library(db).close()

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (3,50) (8,50)")

    monkeypatch.setattr(tagger.search, "rank", broken)
    crashed = CliRunner().invoke(app, ["search", "boat", "--db", str(db)])
    assert crashed.exit_code == 1 and isinstance(crashed.exception, ValueError)
    assert bug("below") in crashed.stderr and "Error:" not in crashed.stderr

    def mistake(*args, **kwargs):
        raise InputError("--after takes a date like 2021")

    monkeypatch.setattr(tagger.search, "rank", mistake)
    told = CliRunner().invoke(app, ["search", "boat", "--db", str(db)])
    assert told.exit_code == 2 and told.stderr.strip() == "Error: --after takes a date like 2021"
    assert issubclass(InputError, ValueError) and issubclass(InputError, UserError)


def _commands(typer_app) -> list[list[str]]:
    """Every command path of a typer app (["scan"], ["vocab", "add"], ...)."""
    import typer.main

    group = typer.main.get_command(typer_app)
    found = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        found += [[name, sub] for sub in subcommands] if subcommands else [[name]]
    return found


@pytest.mark.parametrize("program", ["epsilon-tag", "epsilon-train"])
def test_every_help_is_readable_at_80_columns(program):
    """Nothing cut short, nothing wider than the terminal, descriptions in a column wide
    enough to read (rich's boxed panels once squeezed them to 17 characters)."""
    from typer.testing import CliRunner

    from tagger.cli import app as tag_app
    from trainer.cli import app as train_app

    typer_app = tag_app if program == "epsilon-tag" else train_app
    for command in [[], *_commands(typer_app)]:
        shown = CliRunner().invoke(typer_app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
        assert shown.exit_code == 0, (command, shown.output)
        lines = shown.output.splitlines()
        assert "\u2026" not in shown.output and max(map(len, lines)) <= 80, (command, shown.output)
        assert not any("\u2502" in line for line in lines), command  # no boxes


def test_db_may_come_before_the_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tagger.cli import app

    monkeypatch.delenv("EPSILON_TAG_DB", raising=False)
    told = CliRunner().invoke(app, ["--db", str(tmp_path / "none.db"), "stats"])
    assert told.exit_code == 2 and f"No library at {tmp_path / 'none.db'}" in told.stderr
