"""The command line takes options where users put them, and turns typed errors into one line and a code."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.agents.registry import UnknownAgentError, create_agent
from appliance.cli.errors import EXIT_FAILURE, EXIT_USAGE, as_cli_error
from appliance.cli.parser import build_parser
from appliance.config import ConfigError
from appliance.models.errors import ModelMissingError
from appliance.providers.registry import ProviderConfigError


@pytest.mark.parametrize(
    "argv",
    [
        ["fleet", "ls", "--json", "--config", "f.toml", "--timeout", "1.5"],
        ["fleet", "--json", "--timeout", "1.5", "ls", "--config", "f.toml"],
        ["--config", "f.toml", "fleet", "--json", "ls", "--timeout", "1.5"],
    ],
)
def test_fleet_options_work_before_or_after_the_action(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.json, args.timeout, args.config, args.fleet_command) == (True, 1.5, Path("f.toml"), "ls")


def test_fleet_defaults_hold_when_no_option_is_given() -> None:
    args = build_parser().parse_args(["fleet", "ls"])
    assert (args.json, args.timeout, args.broker, args.config) == (False, 3.0, None, None)


@pytest.mark.parametrize("argv", [["config", "-v"], ["-v", "config"], ["models", "list", "-v"]])
def test_verbose_works_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).verbose == 1


def test_a_config_given_after_the_command_wins_and_one_before_is_kept_otherwise() -> None:
    assert build_parser().parse_args(["--config", "a.toml", "doctor"]).config == Path("a.toml")
    assert build_parser().parse_args(["--config", "a.toml", "doctor", "--config", "b.toml"]).config == Path("b.toml")


def test_an_unknown_agent_is_a_usage_error_without_quotes() -> None:
    with pytest.raises(UnknownAgentError) as raised:
        create_agent("nobody")
    error = as_cli_error(raised.value)
    assert error is not None and error.code == EXIT_USAGE
    assert str(error).startswith("unknown agent 'nobody' (known: ") and not str(error).startswith('"')


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("config error in x: a.b: unknown key"), EXIT_USAGE),
        (ProviderConfigError("stt provider 'local/nope' is unknown"), EXIT_USAGE),
        (ModelMissingError("model silero-vad is missing"), EXIT_FAILURE),
    ],
)
def test_typed_errors_map_to_their_exit_code_and_a_bug_maps_to_none(exc: Exception, code: int) -> None:
    error = as_cli_error(exc)
    assert error is not None and error.code == code and str(error) == str(exc)
    assert as_cli_error(ZeroDivisionError("a bug")) is None
