"""What every command that runs engines does first: load them, with one-line errors."""

from __future__ import annotations

from appliance.app import Appliance
from appliance.cli import EXIT_USAGE, CliError
from appliance.config import AppConfig
from appliance.ops.manifest import UnknownModelError
from appliance.ops.model_store import ModelStoreError
from appliance.providers.registry import ProviderConfigError


async def load_appliance(config: AppConfig) -> Appliance:
    appliance = Appliance(config)
    try:
        await appliance.load()
    except (ProviderConfigError, KeyError) as exc:
        await appliance.aclose()
        raise CliError(str(exc).strip("'\""), EXIT_USAGE) from None
    except (ModelStoreError, UnknownModelError) as exc:
        await appliance.aclose()
        raise CliError(str(exc)) from None
    return appliance
