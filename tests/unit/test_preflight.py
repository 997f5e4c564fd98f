"""What a start refuses is checked before anything loads, so the fleet can check a change the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.agents.registry import UnknownAgentError
from appliance.app import preflight
from appliance.config import load_config
from appliance.models.errors import ModelStoreError
from appliance.providers.registry import ProviderConfigError


def test_a_store_without_the_models_is_refused_naming_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="appliance models fetch"):
        preflight(load_config(environ={"APPLIANCE_MODELS__DIR": str(tmp_path)}))


def test_an_unknown_agent_and_a_provider_without_endpoint_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownAgentError):
        preflight(load_config(environ={"APPLIANCE_AGENT__NAME": "nobody"}))
    with pytest.raises(ProviderConfigError, match=r"\[providers.acme\] base_url"):
        preflight(load_config(environ={"APPLIANCE_LLM__PROVIDER": '"acme/big"'}))
