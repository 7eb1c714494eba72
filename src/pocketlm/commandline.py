"""The command line, generated from the settings' declarations (``pocketlm.settings``).

    @main.command()
    @options(ModelOptions, "model_options")
    @options(EngineConfig, "engine_config", only=("n_ctx",))
    def generate(model_options: ModelOptions, engine_config: EngineConfig): ...

Each declared field becomes one click option: its flags, its type (a range, a choice, an on/off flag, a
repeatable option, a path), its default, its help, and its environment variable, shown in ``--help``.
The command receives one object, built and checked by the dataclass itself. A former name of a setting
stays a hidden option (or variable) that still works, with a FutureWarning, for one release.

Only the commands import this module, and with it click: the engine, the backends, the API, the server
and the models' code never do (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pocketlm.settings import Declaration, InvalidSetting, build, declarations, old_env

_OLD = "pocketlm.old"  # ctx.meta key: the values given under a setting's former flags


class SettingOption(click.Option):
    """A click option generated from a declaration; the flag reference reads the declaration back."""

    def __init__(self, *args, declaration: Declaration, **kwargs):
        super().__init__(*args, **kwargs)
        self.declaration = declaration

    def consume_value(self, ctx: click.Context, opts: Mapping[str, Any]) -> tuple[Any, ParameterSource]:
        value, source = super().consume_value(ctx, opts)
        if source is not ParameterSource.DEFAULT:
            return value, source
        # Neither the flag nor its variable: the setting's former flag, or former variable, may say it.
        if self.name in ctx.meta.get(_OLD, {}):
            return ctx.meta[_OLD][self.name], ParameterSource.COMMANDLINE
        text = old_env(self.declaration)
        if text is not None:
            return (text.split() if self.multiple else text), ParameterSource.ENVIRONMENT
        return value, source


def options(
    cls: type,
    into: str,
    *,
    only: tuple[str, ...] | None = None,
    skip: tuple[str, ...] = (),
    help_texts: Mapping[str, str] | None = None,
    limits: Any = None,
):
    """Add the settings of dataclass ``cls`` to a command (``only`` those named, none of ``skip``); the command
    receives them as one ``cls`` object, argument ``into``. Settings left out keep their defaults.

    ``help_texts``: a command's own words for a setting that means something more precise there (what
    `convert` writes when --quantization is not given). ``limits``: for a request (SamplingParams), the caps
    it is validated under (its ``validated(limits)``), before any model loads.
    """
    declared = {d.name for d in declarations(cls)}
    unknown = (set(only or ()) | set(skip) | set(help_texts or ())) - declared
    assert not unknown, f"{cls.__name__} declares no {', '.join(sorted(unknown))}"
    chosen = [d for d in declarations(cls) if (only is None or d.name in only) and d.name not in skip]
    help_texts = help_texts or {}

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            values = {d.name: d.normalised(kwargs.pop(_param(into, d))) for d in chosen}
            try:
                built = build(cls, values)
                built = built.validated(limits) if limits is not None else built
            except InvalidSetting as e:  # a bad value the flag's type could not see: said like click's own
                ctx = click.get_current_context()
                param = next((p for p in ctx.command.params if p.name == _param(into, e.declaration)), None)
                raise click.BadParameter(e.problem, ctx=ctx, param=param) from None
            return f(*args, **{into: built}, **kwargs)

        for d in reversed(chosen):
            command = _option(d, into, help_texts.get(d.name, d.help), limits)(command)
            for flag in d.old_flags:
                command = _old_option(d, into, flag, limits)(command)
        return command

    return decorate


def _param(into: str, d: Declaration) -> str:
    """The option's name in click: unique per command even where two objects declare the same word."""
    return f"{into}__{d.name}"


def _option(d: Declaration, into: str, help_text: str, limits: Any):
    kwargs: dict[str, Any] = {"envvar": d.env, "show_envvar": True}
    if d.kind is bool:
        kwargs.update(is_flag=True, default=d.default)
    else:
        kwargs.update(type=_type(d, limits), multiple=d.repeatable)
        if d.required:
            kwargs["required"] = True
        else:
            kwargs.update(default=d.default, show_default=d.default not in (None, ()))
    if d.repeatable:
        help_text += " Repeatable."
    return click.option(*d.flags, _param(into, d), cls=SettingOption, declaration=d, help=help_text, **kwargs)


def _old_option(d: Declaration, into: str, flag: str, limits: Any):
    """``flag``, a former name of ``d``: hidden, read first, and handed to the current option if that is unset."""

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value not in (None, (), False):
            warnings.warn(f"{flag} is deprecated: use {d.flag} instead", FutureWarning, stacklevel=2)
            ctx.meta.setdefault(_OLD, {})[_param(into, d)] = value

    kind = {"is_flag": True} if d.kind is bool else {"type": _type(d, limits), "multiple": d.repeatable}
    name = f"{_param(into, d)}__{flag.strip('-').replace('-', '_')}"
    return click.option(flag, name, hidden=True, is_eager=True, expose_value=False, callback=remember, **kind)


def _type(d: Declaration, limits: Any) -> click.ParamType:
    if d.choices:
        return click.Choice(d.choices)
    if d.kind is Path:
        return click.Path(path_type=Path, dir_okay=d.setting.directory)
    bounds = d.range(limits)
    if d.kind is int:
        return click.IntRange(bounds.low, bounds.high, min_open=bounds.low_open) if bounds else click.INT
    if d.kind is float:
        return click.FloatRange(bounds.low, bounds.high, min_open=bounds.low_open) if bounds else click.FLOAT
    return click.STRING
