"""Typer options made from dataclass fields (``trainer.config.option``): a setting is
defined once, with its type, default, help and flag, and every command that takes it
gets the same option.

A command declares a group of settings as one parameter whose default says how it wants
them: ``run: Run = group(Run)`` receives a ``Run`` built from the options of its fields,
``settings: dict = given(TrainConfig)`` the settings given on the command line only (a
nested dict, as a config file has them, so that flags override the file and the file the
defaults). ``expand`` puts the fields' options in the group's place in the signature that
typer reads, so typer sees ordinary parameters: its parsing, validation and ``--help``
are its own.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import Field, fields, is_dataclass
from enum import Enum, StrEnum
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


class _Group:
    """How a command receives the fields of ``cls`` that are options."""

    def __init__(self, cls: type, given: bool, only: tuple[str, ...] | None = None) -> None:
        self.cls, self.given = cls, given
        self.fields = [o for o in _options(cls, cls()) if only is None or o[0].name in only]

    def parameters(self) -> list[inspect.Parameter]:
        return [_parameter(f, kind, default, self.given) for f, kind, default in self.fields]

    def collect(self, values: dict[str, Any]) -> Any:
        """The group's value from the parsed options (removed from ``values``)."""
        if self.given:
            return _given(self.cls, values)
        return self.cls(**{f.name: _plain(values.pop(f.name)) for f, _, _ in self.fields})


def group(cls: type, only: tuple[str, ...] | None = None) -> Any:
    """A parameter default: the command receives ``cls(...)`` built from the options of
    its fields (of those named in ``only``; the others keep their defaults)."""
    return _Group(cls, given=False, only=only)


def given(cls: type) -> Any:
    """A parameter default: the command receives the settings of ``cls`` (and of the
    dataclasses nested in it) that were given on the command line, as a nested dict."""
    return _Group(cls, given=True)


def expand(command: F) -> F:
    """``command`` with each group parameter replaced by its fields' options, for typer."""
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command)
    groups = {name: p.default for name, p in signature.parameters.items() if isinstance(p.default, _Group)}
    parameters: list[inspect.Parameter] = []
    for name, parameter in signature.parameters.items():
        if name in groups:
            parameters += groups[name].parameters()
        else:
            parameters.append(parameter.replace(annotation=hints.get(name, parameter.annotation)))

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        for name, spec in groups.items():
            values[name] = spec.collect(values)
        return command(**values)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    # typer reads the types from the annotations: those of the options, resolved.
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return typing.cast(F, run)


def _options(cls: type, defaults: Any) -> list[tuple[Field, Any, Any]]:
    """(field, type, default) of every field of ``cls`` that is an option, nested
    dataclasses' fields included, with the defaults ``defaults`` has."""
    hints = typing.get_type_hints(cls)
    found: list[tuple[Field, Any, Any]] = []
    for f in fields(cls):
        value = getattr(defaults, f.name)
        if is_dataclass(value):
            found += _options(type(value), value)
        elif "option" in f.metadata:
            found.append((f, hints[f.name], value))
    return found


def _given(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The settings given (not None) among ``values``, nested as ``cls`` nests them."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            nested = _given(hints[f.name], values)
            if nested:
                out[f.name] = nested
        elif "option" in f.metadata:
            value = values.pop(f.name)
            if value is not None:
                out[f.name] = _plain(value)
    return out


def _parameter(f: Field, kind: Any, default: Any, given_only: bool) -> inspect.Parameter:
    """The typer option of one field. A given-only option defaults to None (not given),
    and its help says the default the field has."""
    how = f.metadata["option"]
    flag = how["flag"] or f"--{f.name.replace('_', '-')}"
    names = [flag] if how["flag"] else []
    if kind is bool and given_only:  # three states: on, off, or as the config file says
        names = [f"{flag}/--no-{flag.removeprefix('--')}"]
    if how["short"]:
        names.append(how["short"])
    text = how["help"]
    if given_only and default is not None:
        shown = (flag if default else f"--no-{flag.removeprefix('--')}") if kind is bool else default
        text = f"{text} (default: {shown})"
    if how["choices"]:  # typer lists an enum's values in --help and checks them
        choices = StrEnum(_camel(f.name), [(c, c) for c in how["choices"]])  # type: ignore[misc]
        kind, default = choices, default if default is None else choices(default)
    if given_only:
        kind, default = kind | None, None
    option = typer.Option(default, *names, help=text, min=how["min"], max=how["max"])
    return inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=kind)


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _plain(value: Any) -> Any:
    """An enum's value as the plain string a dataclass field holds."""
    return value.value if isinstance(value, Enum) else value
