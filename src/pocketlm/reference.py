"""The flag reference (docs/reference/flags.md), written from the command tree itself.

    python -m pocketlm.reference docs/reference/flags.md

Every option of every command, as ``--help`` has it: flags, environment variable, type and range,
default, help. tests/test_settings.py fails when the committed file no longer matches the code.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from pocketlm import cli
from pocketlm.commandline import SettingOption
from pocketlm.files import write_text
from pocketlm.settings import Range

PATH = Path("docs/reference/flags.md")  # from the repository's root
COMMAND = f"python -m pocketlm.reference {PATH}"

INTRO = f"""\
# Flag reference

Every option of every `pocketlm` command. Written from the code by `{COMMAND}`: do not edit it by hand.

Every flag is also an environment variable. A setting shared by several commands (the model, engine,
sampling, server and deploy settings) is `POCKETLM_<FLAG>`: `--n-ctx` is `POCKETLM_N_CTX` for every command
that takes it. A flag that belongs to one command only is `POCKETLM_<COMMAND>_<FLAG>`: `pocketlm finetune
--max-steps` is `POCKETLM_FINETUNE_MAX_STEPS`, `pocketlm inspect next --top` is `POCKETLM_INSPECT_NEXT_TOP`.
Two flags read another command's variable on purpose: `caption` and `describe` take their `--model` from
`POCKETLM_CAPTION_MODEL` (the server's `--caption-model`), `insight` its `--api-key` from `POCKETLM_API_KEY`
(the server's keys).

A flag given on the command line wins over its variable; an empty variable counts as unset. A repeatable
flag takes space-separated values from its variable (`POCKETLM_API_KEY="key1 key2"`); an on/off flag is on
with `1`, `true`, `yes` or `on`. The same names, bounds and checks apply where there is no command line
(AWS Lambda reads the serve settings from the environment) and to the objects built in Python.
"""


def commands(group: click.Group = cli.main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """(name, command) for every command under ``group``, "inspect next" for a subcommand."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def markdown() -> str:
    lines = [INTRO]
    former: dict[tuple[str, str], list[str]] = {}
    for name, command in commands():
        ctx = click.Context(command, info_name=f"pocketlm {name}")
        summary = inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f"## pocketlm {name}", "", summary, "", f"Usage: `pocketlm {name} {usage}`"]
        lines += ["", "| flag | variable | type | default | what it does |", "| --- | --- | --- | --- | --- |"]
        for option in command.params:
            if isinstance(option, SettingOption):
                lines.append(_row(option))
                d = option.declaration
                for old in d.old_flags:
                    former.setdefault((old, d.flag), []).append(name)
                for old in d.old_envs:
                    former.setdefault((old, d.env), []).append(name)
        lines.append("")
    lines += [
        "## Former names",
        "",
        "Still accepted for one release, with a warning (FutureWarning) that names the new one.",
        "",
        "| former name | now | commands |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{old}` | `{new}` | {', '.join(names)} |" for (old, new), names in sorted(former.items())]
    return "\n".join(lines) + "\n"


def _row(option: SettingOption) -> str:
    flags = ", ".join(f"`{flag}`" for flag in option.opts)
    if option.required:
        default = "required"
    elif option.is_flag or option.default in (None, ()):
        default = ""
    else:
        default = f"`{option.default}`"
    cells = (flags, f"`{option.envvar}`", _type(option), default, option.help or "")
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def _type(option: SettingOption) -> str:
    if option.is_flag:
        return "on/off"
    kind = option.type
    if isinstance(kind, click.Choice):
        text = "one of " + ", ".join(f"`{choice}`" for choice in kind.choices)
    elif isinstance(kind, (click.IntRange, click.FloatRange)):
        info = kind.to_info_dict()
        bounds = Range(info["min"], info["max"], info["min_open"]).describe()
        text = f"{'integer' if isinstance(kind, click.IntRange) else 'number'}, `{bounds}`"
    else:
        text = {click.INT: "integer", click.FLOAT: "number"}.get(
            kind, "path" if isinstance(kind, click.Path) else "text"
        )
    return f"{text}, repeatable" if option.multiple else text


def write(argv: list[str]) -> int:
    """Write the reference to the path given (default: docs/reference/flags.md under the current directory)."""
    path = Path(argv[0]) if argv else PATH
    write_text(path, markdown())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(write(sys.argv[1:]))
