"""Every setting of pocketlm, declared once: a dataclass field with its help, bounds and old names.

    @dataclass(frozen=True)
    class EngineConfig:
        slots: int = setting(16, low=1, help="Slots decoded together ...")

That one line is the flag ``--slots``, the environment variable ``POCKETLM_SLOTS``, the check that
refuses ``EngineConfig(slots=0)`` however the object is built (command line, environment, Python),
the text of ``--help`` and of the flag reference (docs/reference/flags.md). The command line is
generated from it by ``pocketlm.commandline``; this module knows nothing of click, so the engine and
the server declare their settings without depending on it, and AWS Lambda reads them from the
environment (``from_env``) with the same parsing and checks as the command line.

Names. The flag is the field's name with dashes: ``max_queue`` is ``--max-queue``. A repeatable setting
(``tuple[str, ...]``) is plural in code and singular on the command line, one value per flag: ``api_keys``
is ``--api-key``. A trailing underscore (``from_``, a Python keyword) is dropped. The variable is
``POCKETLM_<FLAG>`` for a setting shared by several commands (model, engine, sampling, server, deploy), and
``POCKETLM_<COMMAND>_<FLAG>`` for a flag that belongs to one command: the dataclass of one command's own
flags says which with ``COMMAND = "finetune"`` (``POCKETLM_FINETUNE_MAX_STEPS``; see ``Declared``).

Fields without ``setting(...)`` are not settings (tuning constants such as ``EngineConfig.prefill_chunk``);
a field whose type is a dataclass is flattened into its parent: ``Settings.model_options.backend`` is
``--backend``. A setting the parent declares itself replaces a nested one of the same flag: the server's
repeatable ``--model`` (``Settings.models``, the models it serves) takes the place of ``ModelOptions.model``,
the one model the other commands load.
"""

from __future__ import annotations

import functools
import math
import os
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pocketlm.errors import InvalidParameter, PocketLMError

PREFIX = "POCKETLM_"
_KEY = "pocketlm.setting"  # where setting() keeps its Setting in a field's metadata
_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "text", Path: "a path"}
_TRUE, _FALSE = ("1", "true", "t", "yes", "y", "on"), ("0", "false", "f", "no", "n", "off")  # as click reads them


@dataclass(frozen=True)
class Setting:
    """What a field's declaration says beyond its name, type and default."""

    help: str
    low: float | None = None
    high: float | str | None = None  # a number, or the name of a Limits field: a cap the server sets
    low_open: bool = False  # low itself is refused
    choices: tuple[str, ...] = ()  # where the type is not a Literal
    short: str | None = None  # "-m"
    old: tuple[str, ...] = ()  # former flags ("--out") and variables ("POCKETLM_CONVERT_TYPE"): one more release
    env: str | None = None  # a variable not named by the rule: another command's (caption's -m reads the server's)
    directory: bool = False  # a Path that may name a directory
    check: Callable[[Any], None] | None = None  # a check beyond bounds and choices; raises PocketLMError


def setting(
    default: Any = MISSING,
    *,
    help: str,
    low: float | None = None,
    high: float | str | None = None,
    low_open: bool = False,
    choices: tuple[str, ...] = (),
    short: str | None = None,
    old: tuple[str, ...] = (),
    env: str | None = None,
    directory: bool = False,
    check: Callable[[Any], None] | None = None,
) -> Any:
    """A dataclass field that is a setting. Without a default it is required (a required flag)."""
    declared = Setting(help, low, high, low_open, choices, short, old, env, directory, check)
    return field(default=default, metadata={_KEY: declared})


@dataclass(frozen=True)
class Range:
    """The numbers a setting takes: ``low`` (excluded when ``low_open``) to ``high``, inclusive."""

    low: float | None
    high: float | None
    low_open: bool = False

    def describe(self) -> str:
        """As click writes a range: ``x>=1``, ``0.0<x<=1.0``."""
        if self.low is None:
            return f"x<={self.high}"
        if self.high is None:
            return f"x{'>' if self.low_open else '>='}{self.low}"
        return f"{self.low}{'<' if self.low_open else '<='}x<={self.high}"

    def problem(self, value: float) -> str | None:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {'>' if self.low_open else '>='} {self.low}, got {value}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high}, got {value}"
        return None


@dataclass(frozen=True)
class Declaration:
    """One setting as the command line, the environment and the checks see it."""

    name: str  # the field's
    owner: type  # the dataclass that declares it
    kind: type  # one value's type: int, float, bool, str or Path
    optional: bool  # None is a value (off / unset)
    repeatable: bool  # a tuple of values
    choices: tuple[str, ...]
    default: Any  # MISSING: required
    setting: Setting

    @property
    def help(self) -> str:
        return self.setting.help

    @property
    def flag(self) -> str:
        name = self.name.rstrip("_")
        return "--" + (name[:-1] if self.repeatable and name.endswith("s") else name).replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        return (self.setting.short, self.flag) if self.setting.short else (self.flag,)

    @property
    def command(self) -> str | None:
        """The command this flag belongs to, or None for a setting several commands share."""
        return getattr(self.owner, "COMMAND", None)

    @property
    def env(self) -> str:
        return self.setting.env or env_var(self.flag, self.command)

    @property
    def old_flags(self) -> tuple[str, ...]:
        return tuple(name for name in self.setting.old if name.startswith("-"))

    @property
    def old_envs(self) -> tuple[str, ...]:
        return tuple(name for name in self.setting.old if name.startswith(PREFIX))

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def range(self, limits: Any = None) -> Range | None:
        """The numbers allowed; a ``high`` that names a Limits field is that field of ``limits`` (None: no cap)."""
        low, high = self.setting.low, self.setting.high
        if isinstance(high, str):
            high = getattr(limits, high) if limits is not None else None
        return None if low is None and high is None else Range(low, high, self.setting.low_open)

    def problem(self, value: Any, limits: Any = None) -> str | None:
        """What is wrong with ``value`` for this setting (``limits``: the caps of a request), or None."""
        if value is None and self.optional:
            return None
        if not self.repeatable:
            return self._problem(value, limits)
        if not isinstance(value, (tuple, list)):
            return f"must be a list, got {value!r}"
        return next(filter(None, (self._problem(one, limits) for one in value)), None)

    def _problem(self, value: Any, limits: Any) -> str | None:
        if not _is(value, self.kind):
            return f"must be {_KINDS[self.kind]}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}; got {value!r}"
        bounds = self.range(limits)
        if bounds is not None and (problem := bounds.problem(value)):
            return problem
        if self.setting.check is not None:
            try:
                self.setting.check(value)
            except PocketLMError as e:
                return e.message
        return None

    def parse(self, text: str) -> Any:
        """The value of ``text``, from an environment variable; a repeatable setting takes space-separated values."""
        if not self.repeatable:
            return self._parse(text)
        return tuple(self._parse(one) for one in text.split())

    def _parse(self, text: str) -> Any:
        if self.kind is bool:
            if text.strip().lower() not in _TRUE + _FALSE:
                raise InvalidSetting(self, f"must be one of {', '.join(_TRUE + _FALSE)}; got {text!r}")
            return text.strip().lower() in _TRUE
        try:
            return self.kind(text)
        except ValueError:
            raise InvalidSetting(self, f"must be {_KINDS[self.kind]}, got {text!r}") from None

    def normalised(self, value: Any) -> Any:
        """An empty text for an optional setting means unset, as an empty variable does."""
        return None if self.optional and value == "" else value


def cores() -> int:
    """The CPU cores this process may run on: its affinity mask (a container's cpuset, ``taskset``, a test
    worker's share), not the machine's count. The default of every thread count (``--threads`` and the task
    engines'): more threads than cores make llama.cpp's spinning threads wait for one another."""
    return len(os.sched_getaffinity(0))


class InvalidSetting(InvalidParameter):
    """A setting has a bad value: the message names its flag and variable, and what it accepts."""

    def __init__(self, declaration: Declaration, problem: str):
        super().__init__(declaration.name, f"{problem} ({declaration.flag} / {declaration.env})")
        self.declaration, self.problem = declaration, problem


def env_var(flag: str, command: str | None = None) -> str:
    """``--max-queue`` is ``POCKETLM_MAX_QUEUE``; finetune's own ``--max-steps`` is ``POCKETLM_FINETUNE_MAX_STEPS``."""
    words = [*(command.split() if command else ()), flag.lstrip("-")]
    return PREFIX + "_".join(words).replace("-", "_").upper()


@functools.cache
def declarations(cls: type) -> tuple[Declaration, ...]:
    """Every setting of dataclass ``cls``, nested dataclasses flattened, in field order."""
    hints = typing.get_type_hints(cls)
    own = [_declaration(cls, f, hints[f.name], f.metadata[_KEY]) for f in fields(cls) if _KEY in f.metadata]
    replaced = {d.flag for d in own}  # a nested setting of one of these flags gives way to the parent's own
    found: list[Declaration] = []
    for f in fields(cls):
        if _KEY in f.metadata:
            found.append(next(d for d in own if d.name == f.name))
        elif is_dataclass(hints[f.name]):
            found.extend(d for d in declarations(hints[f.name]) if d.flag not in replaced)
    names = [d.name for d in found]
    assert len(names) == len(set(names)), f"{cls.__name__} declares a setting twice: {names}"
    return tuple(found)


def declared(cls: type, name: str) -> Declaration:
    """The declaration of setting ``name`` in ``cls`` (or in a dataclass nested in it)."""
    return next(d for d in declarations(cls) if d.name == name)


def _declaration(cls: type, f, hint: Any, declared: Setting) -> Declaration:
    optional = _is_optional(hint)
    if optional:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    repeatable = typing.get_origin(hint) is tuple
    if repeatable:
        hint = typing.get_args(hint)[0]
    choices = declared.choices
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        hint = type(choices[0])
    default = f.default if f.default_factory is MISSING else f.default_factory()
    return Declaration(f.name, cls, hint, optional, repeatable, tuple(choices), default, declared)


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is an int to Python, never to a setting
        return False
    if kind is float:
        return isinstance(value, (int, float)) and not math.isnan(value)
    if kind is Path:
        return isinstance(value, (str, os.PathLike))
    return isinstance(value, kind)


class Declared:
    """The base of a dataclass of settings: ``__post_init__`` checks them, so no way of building one skips it
    (command line, environment, Python). A subclass that checks more calls ``super().__post_init__()`` first.

    ``COMMAND``: the command whose own flags these are (their variables are ``POCKETLM_<COMMAND>_<FLAG>``);
    None for settings several commands share. SamplingParams is no Declared: a request is checked by its
    ``validated(limits)``, against the limits of the server it is sent to.
    """

    COMMAND: ClassVar[str | None] = None

    def __post_init__(self):
        check(self)


def check(obj: Any) -> None:
    """Refuse a setting of ``obj`` (its own fields; nested dataclasses check theirs) of the wrong type, outside
    its bounds or choices, naming its flag and variable."""
    for d in declarations(type(obj)):
        if d.owner is type(obj) and (problem := d.problem(getattr(obj, d.name))):
            raise InvalidSetting(d, problem)


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls`` with the settings in ``values`` (by name, nested ones included), defaults for the rest."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.metadata.get(_KEY) is not None:
            if f.name in values:
                kwargs[f.name] = values[f.name]
        elif is_dataclass(hints[f.name]):
            kwargs[f.name] = build(hints[f.name], values)
    return cls(**kwargs)


def from_env(cls: type, environ: Mapping[str, str] | None = None) -> Any:
    """``cls`` as the ``POCKETLM_*`` environment sets it, parsed and checked as on the command line.

    Where there is no command line (AWS Lambda imports a handler; a Ray replica): an unset or empty variable
    leaves the default; a bad value raises InvalidSetting naming the flag and the variable.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for d in declarations(cls):
        text = environ.get(d.env) or old_env(d, environ)
        if text:
            values[d.name] = d.parse(text)
    return build(cls, values)


def old_env(d: Declaration, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a former name of ``d``'s variable, with a FutureWarning that names the new one, or None."""
    environ = os.environ if environ is None else environ
    for name in d.old_envs:
        if environ.get(name):
            warnings.warn(f"{name} is deprecated: set {d.env} instead", FutureWarning, stacklevel=3)
            return environ[name]
    return None
