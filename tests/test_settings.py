"""Settings declared once (pocketlm.settings): the same names, bounds and checks from the command line,
the environment and Python, old names that still work with a warning, and the flag reference."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pocketlm import reference
from pocketlm.cli import main
from pocketlm.commandline import SettingOption, options
from pocketlm.deploy.settings import settings_from_env
from pocketlm.engine import EngineConfig, Limits, SamplingParams
from pocketlm.engine.params import bounds
from pocketlm.errors import InvalidParameter
from pocketlm.models.options import ModelOptions
from pocketlm.server import ServeSettings
from pocketlm.settings import declarations, from_env
from pocketlm.training.config import FinetuneConfig

ROOT = Path(__file__).resolve().parents[1]


def probe(cls, **kwargs) -> click.Command:
    """A command that takes the settings of ``cls`` as the real commands do, and prints the object it gets."""

    @click.command()
    @options(cls, "got", **kwargs)
    def command(got):
        click.echo(repr(got))

    return command


def run(command: click.Command, *args: str, env: dict | None = None):
    return CliRunner().invoke(command, list(args), env=env, catch_exceptions=False)


# ---- names: one rule for every flag and variable


def test_a_shared_setting_is_pocketlm_flag_everywhere():
    out = run(probe(EngineConfig, only=("n_ctx",)), env={"POCKETLM_N_CTX": "512"})
    assert out.exit_code == 0 and "n_ctx=512" in out.output
    for command in (("serve",), ("generate",), ("chat",), ("deploy", "ray")):
        assert "POCKETLM_N_CTX" in CliRunner().invoke(main, [*command, "--help"]).output


def test_a_command_scoped_flag_is_pocketlm_command_flag():
    env = {"POCKETLM_FINETUNE_MAX_STEPS": "7", "POCKETLM_FINETUNE_DATA": "d.txt", "POCKETLM_FINETUNE_OUTPUT": "o"}
    out = run(probe(FinetuneConfig), env=env)
    assert out.exit_code == 0, out.output
    assert "max_steps=7" in out.output and "data='d.txt'" in out.output and "output='o'" in out.output
    assert "POCKETLM_INSPECT_NEXT_TOP" in CliRunner().invoke(main, ["inspect", "next", "--help"]).output


def test_serve_takes_model_once_per_model_where_the_other_commands_take_one():
    out = run(probe(ServeSettings), "--model", "a.gguf", "-m", "b", "--keep-alive", "1h30m", "--http-keep-alive", "9")
    assert out.exit_code == 0, out.output
    assert "models=('a.gguf', 'b')" in out.output and "keep_alive='1h30m'" in out.output
    assert "http_keep_alive=9.0" in out.output and "model=None" in out.output  # ModelOptions.model gave way
    assert [d.flag for d in declarations(ServeSettings)].count("--model") == 1
    single = run(probe(ModelOptions), "--model", "a.gguf", "--model", "b")
    assert "model='b'" in single.output  # generate, chat, eval: one model, the last --model given


def test_the_model_keep_alive_and_budget_are_checked_like_any_setting():
    refused = CliRunner().invoke(main, ["serve", "--keep-alive", "soon"])
    assert refused.exit_code == 2 and "must be a duration such as '5m'" in refused.output
    assert "--keep-alive" in refused.output
    budget = CliRunner().invoke(main, ["serve", "--memory-budget", "lots"])
    assert budget.exit_code == 2 and "must be a size such as 4GB" in budget.output
    missing = CliRunner().invoke(main, ["serve", "--models-dir", "/no/such/dir"])
    assert missing.exit_code == 2 and "--models-dir" in missing.output


def test_a_flag_on_the_command_line_wins_over_its_variable():
    out = run(probe(EngineConfig), "--slots", "3", env={"POCKETLM_SLOTS": "5"})
    assert "slots=3" in out.output


def test_inspect_next_takes_its_sampling_flags_from_the_declarations():
    command = main.commands["inspect"].commands["next"]
    sampling = {
        p.declaration.name for p in command.params if getattr(p, "declaration", None) in declarations(SamplingParams)
    }
    assert sampling == {"temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed"}
    top_p = next(p for p in command.params if p.opts == ["--top-p"])
    assert top_p.envvar == "POCKETLM_TOP_P" and top_p.help.startswith("Nucleus sampling")


# ---- bounds: refused the same way however the value arrives


def test_a_bound_is_refused_from_the_command_line_the_environment_and_python():
    by_flag = CliRunner().invoke(main, ["serve", "--slots", "0"])
    by_variable = CliRunner().invoke(main, ["serve"], env={"POCKETLM_SLOTS": "0"})
    for out in (by_flag, by_variable):  # refused while parsing: no model is loaded
        assert out.exit_code == 2
        assert "'--slots' (env var: 'POCKETLM_SLOTS'): 0 is not in the range x>=1" in out.output
    for build in (lambda: settings_from_env({"POCKETLM_SLOTS": "0"}), lambda: EngineConfig(slots=0)):
        with pytest.raises(InvalidParameter) as e:
            build()
        assert e.value.param == "slots"
        assert e.value.message == "slots: must be >= 1, got 0 (--slots / POCKETLM_SLOTS)"


def test_python_objects_are_checked_like_flags():
    with pytest.raises(
        InvalidParameter, match=r"threads: must be an integer, got '4' \(--threads / POCKETLM_THREADS\)"
    ):
        ModelOptions(threads="4")
    with pytest.raises(InvalidParameter, match=r"backend: must be one of auto, llama.cpp, torch; got 'tpu'"):
        ModelOptions(backend="tpu")
    with pytest.raises(InvalidParameter, match="log_format: must be one of text, json"):
        ServeSettings(log_format="xml")
    with pytest.raises(InvalidParameter, match=r"lora_targets: must be text, got 3 \(--lora-target / "):
        FinetuneConfig(data="d", output="o", lora_targets=(3,))


def test_lambda_settings_refuse_a_bad_variable_naming_flag_and_variable():
    cases = {
        "POCKETLM_SLOTS": ("abc", "slots: must be an integer, got 'abc' (--slots / POCKETLM_SLOTS)"),
        "POCKETLM_LOG_FORMAT": ("xml", "must be one of text, json; got 'xml' (--log-format / POCKETLM_LOG_FORMAT)"),
        "POCKETLM_PUBLIC_DOCS": ("maybe", "(--public-docs / POCKETLM_PUBLIC_DOCS)"),
        "POCKETLM_REQUEST_TIMEOUT": ("0", "must be > 0.0, got 0.0 (--request-timeout / POCKETLM_REQUEST_TIMEOUT)"),
    }
    for variable, (value, message) in cases.items():
        with pytest.raises(InvalidParameter) as e:
            settings_from_env({variable: value})
        assert message in e.value.message, e.value.message


def test_lambda_settings_read_every_kind_of_value():
    env = {"POCKETLM_PUBLIC_DOCS": "yes", "POCKETLM_CORS_ORIGIN": "https://a https://b", "POCKETLM_MODEL": ""}
    settings = settings_from_env(env)
    assert settings.public_docs and settings.cors_origins == ("https://a", "https://b")
    assert settings.model_options.model is None  # empty: unset, as on the command line
    assert settings_from_env({}) == ServeSettings()


def test_a_request_is_checked_against_the_server_limits_its_bounds_name():
    assert bounds(Limits(max_new_tokens=4))["max_new_tokens"].high == 4
    assert SamplingParams(max_new_tokens=4).validated(Limits(max_new_tokens=4)).max_new_tokens == 4
    with pytest.raises(InvalidParameter, match="max_new_tokens: must be <= 4, got 5"):
        SamplingParams(max_new_tokens=5).validated(Limits(max_new_tokens=4))
    limited = next(p for p in main.commands["generate"].params if p.opts == ["--max-new-tokens"])
    assert (limited.type.min, limited.type.max) == (0, Limits().max_new_tokens)  # the CLI's own limits (0: score only)


# ---- old names: one more release, with a warning


def test_an_old_flag_still_works_and_warns():
    with pytest.warns(FutureWarning, match="--speculative-tokens is deprecated: use --draft-tokens instead"):
        out = run(probe(EngineConfig), "--speculative-tokens", "5")
    assert "draft_tokens=5" in out.output
    with pytest.warns(FutureWarning, match="--out is deprecated: use --output instead"):
        out = run(probe(FinetuneConfig), "--data", "d.txt", "--out", "o")  # a required flag, given by its old name
    assert out.exit_code == 0 and "output='o'" in out.output


def test_an_old_variable_still_works_and_warns():
    env = {"POCKETLM_SPECULATIVE_TOKENS": "5"}
    with pytest.warns(FutureWarning, match="POCKETLM_SPECULATIVE_TOKENS is deprecated: set POCKETLM_DRAFT_TOKENS"):
        assert "draft_tokens=5" in run(probe(EngineConfig), env=env).output
    with pytest.warns(FutureWarning, match="POCKETLM_SPECULATIVE_TOKENS is deprecated"):
        assert settings_from_env(env).engine.draft_tokens == 5
    with pytest.warns(FutureWarning, match="POCKETLM_CONVERT_TYPE is deprecated: set POCKETLM_QUANTIZATION"):
        assert from_env(ModelOptions, {"POCKETLM_CONVERT_TYPE": "q8_0"}).quantization == "q8_0"


def test_the_new_name_wins_over_the_old_one():
    with pytest.warns(FutureWarning):
        out = run(probe(EngineConfig), "--draft-tokens", "1", "--speculative-tokens", "5")
    assert "draft_tokens=1" in out.output
    assert (
        settings_from_env({"POCKETLM_DRAFT_TOKENS": "2", "POCKETLM_SPECULATIVE_TOKENS": "5"}).engine.draft_tokens == 2
    )


def test_old_flags_are_hidden_from_help():
    shown = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--draft-tokens" in shown and "--speculative-tokens" not in shown


# ---- the reference


def test_the_flag_reference_is_up_to_date():
    committed = (ROOT / reference.PATH).read_text()
    assert committed == reference.markdown(), f"docs/reference/flags.md is stale: run `{reference.COMMAND}`"


def test_every_option_of_every_command_has_a_variable_and_is_in_the_reference():
    text = reference.markdown()
    for name, command in reference.commands():
        section = text.split(f"## pocketlm {name}\n", 1)[1].split("\n## ", 1)[0]
        for option in command.params:
            if isinstance(option, click.Option) and not option.hidden:
                assert isinstance(option, SettingOption), f"{name} {option.opts}: declare it with setting()"
                assert option.envvar and option.show_envvar, f"{name} {option.opts}"
                assert f"`{option.opts[-1]}`" in section and f"`{option.envvar}`" in section, f"{name} {option.opts}"
