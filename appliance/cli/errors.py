"""How a failure reaches the user: one line on stderr and an exit status.

Usage errors (bad arguments, bad config, a name nothing answers to) exit 2; operational errors (a
missing model, an unreachable server, a failed run) exit 1. Lower layers raise their own typed errors;
`as_cli_error` is the one place that decides which kind each is, so no command cleans up messages.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report as one line; `code` is the exit status."""

    code = EXIT_FAILURE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CliError):
    """The command line or the config is wrong: the user can fix it (exit 2)."""

    code = EXIT_USAGE


class OperationalError(CliError):
    """The command was right but could not be done here and now (exit 1)."""

    code = EXIT_FAILURE


def as_cli_error(exc: BaseException) -> CliError | None:
    """The one-line error for an exception the lower layers raise on purpose; None for a bug."""
    from appliance.agents.registry import UnknownAgentError
    from appliance.audio.wav import WavError
    from appliance.config import ConfigError
    from appliance.models.errors import ModelStoreError
    from appliance.models.manifest import ManifestError, UnknownModelError
    from appliance.providers.registry import ProviderConfigError
    from appliance.providers.secrets import SecretError
    from appliance.release.errors import ReleaseBuildError, ReleaseRefused, ReleaseUsageError

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, (ConfigError, ProviderConfigError, UnknownAgentError, WavError, SecretError)):
        return UsageError(str(exc))
    if isinstance(exc, ReleaseUsageError):
        return UsageError(str(exc))
    if isinstance(exc, ReleaseRefused):
        return OperationalError(f"{exc.code.value}: {exc.message}")
    if isinstance(exc, (ModelStoreError, UnknownModelError, ManifestError, ReleaseBuildError)):
        return OperationalError(str(exc))
    return None
