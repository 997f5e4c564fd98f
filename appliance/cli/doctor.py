"""`appliance doctor`: is this box ready? Engines, models, sound devices, network, credentials, settings.

A check that fails and is `required` makes the exit status 1: something this config needs is missing.
The rest are warnings. `install-release.sh` runs it on a new release before switching to it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from appliance.cli.devices import default_devices
from appliance.cli.errors import EXIT_FAILURE, EXIT_OK
from appliance.config import AppConfig
from appliance.models.store import open_store
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import ProviderConfigError, check_descriptor
from appliance.providers.secrets import SecretError, resolve_secret
from appliance.system.reachability import probe_http, probe_tcp

ENGINES = ("onnxruntime", "faster_whisper", "llama_cpp", "piper", "soxr")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True

    @property
    def mark(self) -> str:
        return "ok" if self.ok else ("FAIL" if self.required else "warn")


async def run_checks(config: AppConfig, timeout_s: float = 2.0) -> list[Check]:
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0])]
    for module in ENGINES:
        found = importlib.util.find_spec(module) is not None
        checks.append(Check(f"engine package {module}", found, "installed" if found else "missing: scripts/setup"))
    checks.append(agent_check(config))
    checks += provider_checks(config)
    checks += credential_checks(config)
    checks += model_checks(config)
    checks.append(sound_check(config))
    budget = ComputeBudget.for_cores(config.compute.threads)
    detail = f"{budget.cores} cores: stt {budget.stt}, llm {budget.llm}, tts {budget.tts}, vad {budget.vad} threads"
    checks.append(Check("compute budget", True, detail))
    checks += await asyncio.gather(broker_check(config, timeout_s), livekit_check(config, timeout_s))
    return checks


def agent_check(config: AppConfig) -> Check:
    """The configured agent loads (registered, entry point or import path), and what tools it brings."""
    from appliance.agents.catalog import describe_agent
    from appliance.agents.registry import add_search_path

    add_search_path(config.agent.search_path or [])
    try:
        described = describe_agent(config.agent.name, "configured")
    except Exception as exc:
        return Check(f"agent {config.agent.name}", False, str(exc))
    tools = ", ".join(t.name for t in described.tools) or "no tools"
    return Check(f"agent {config.agent.name}", True, f"loads; tools: {tools}")


def _chains(config: AppConfig) -> dict[str, list[str]]:
    return {"vad": [config.vad.provider], "stt": config.stt.provider, "llm": config.llm.provider,
            "tts": config.tts.provider}  # fmt: skip


def provider_checks(config: AppConfig) -> list[Check]:
    checks = []
    for stage, chain in _chains(config).items():
        for descriptor in chain:
            try:
                check_descriptor(stage, descriptor, config.providers)
                checks.append(Check(f"{stage} provider", True, descriptor))
            except ProviderConfigError as exc:
                checks.append(Check(f"{stage} provider", False, str(exc)))
    return checks


def credential_checks(config: AppConfig) -> list[Check]:
    """Cloud keys present for every cloud vendor named (required where a chain has nothing local to fall to)."""
    vendors: dict[str, bool] = {name: False for name in config.providers}
    for chain in _chains(config).values():
        cloud = [d.partition("/")[0] for d in chain if not d.startswith("local/")]
        for vendor in cloud:
            vendors[vendor] = vendors.get(vendor, False) or len(cloud) == len(chain)
    checks = []
    for vendor, alone in vendors.items():
        endpoint = config.providers.get(vendor)
        reference = endpoint.api_key if endpoint else None
        name = f"cloud credentials for {vendor}"
        if not reference:
            missing = vendor == "openai"  # OpenAI itself always wants a key; a local server may not
            detail = f"none: set [providers.{vendor}] api_key" if missing else "none configured (none needed?)"
            checks.append(Check(name, not missing, detail, required=alone))
            continue
        try:
            resolve_secret(reference)
        except SecretError as exc:
            checks.append(Check(name, False, str(exc), required=alone))
            continue
        by_reference = reference.startswith(("env:", "file:"))
        checks.append(Check(name, True, reference if by_reference else "inline (prefer env: or file:)", alone))
    if config.livekit.url:
        checks.append(livekit_credentials(config))
    return checks


def livekit_credentials(config: AppConfig) -> Check:
    livekit = config.livekit
    try:
        if resolve_secret(livekit.token):
            return Check("livekit credentials", True, "a join token", livekit.auto_join)
        if resolve_secret(livekit.api_key) and resolve_secret(livekit.api_secret):
            return Check("livekit credentials", True, "api_key and api_secret", livekit.auto_join)
        detail = "none: set livekit.token, or livekit.api_key and api_secret"
    except SecretError as exc:
        detail = str(exc)
    return Check("livekit credentials", False, detail, required=livekit.auto_join)


def model_checks(config: AppConfig) -> list[Check]:
    """Every default model and every model a local provider in the config names; others only if present."""
    configured = {d.partition("/")[2].partition(":")[0] for chain in _chains(config).values() for d in chain
                  if d.startswith("local/")}  # fmt: skip
    store = open_store(config.models.dir)
    checks = []
    for row in store.list_rows():
        needed = row.default or row.name in configured
        if not needed and not row.present:
            continue
        fix = "appliance models fetch" + ("" if row.default else f" {row.name}")
        detail = "verified" if row.verified else ("corrupted" if row.present else f"missing: {fix}")
        checks.append(Check(f"model {row.name}", row.verified, detail, required=needed))
    return checks


def sound_check(config: AppConfig) -> Check:
    """Required when the config plays or records on the device; headless boxes only get a note."""
    devices = default_devices()
    wants_input, wants_output = config.audio.input == "device", config.audio.output == "device"
    ok = (devices.input is not None or not wants_input) and (devices.output is not None or not wants_output)
    found = f"in: {devices.input or '-'}, out: {devices.output or '-'}"
    detail = found if devices.input or devices.output else devices.reason
    if ok and not (devices.input and devices.output) and devices.reason:
        detail = f"{found} ({devices.reason})"
    return Check("sound devices", ok, detail, required=wants_input or wants_output)


async def broker_check(config: AppConfig, timeout_s: float) -> Check:
    if not config.mqtt.enabled:
        return Check("mqtt broker", True, "mqtt off", required=False)
    probe = await probe_tcp(config.mqtt.host, config.mqtt.port, timeout_s)
    return Check("mqtt broker", probe.ok, probe.detail)


async def livekit_check(config: AppConfig, timeout_s: float) -> Check:
    if not config.livekit.url:
        return Check("livekit server", True, "livekit off (no livekit.url)", required=False)
    probe = await probe_http(config.livekit.url, timeout_s)
    return Check("livekit server", probe.ok, probe.detail)


def report(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.ok or not c.required for c in checks), "checks": [asdict(c) for c in checks]}


async def doctor_command(args: argparse.Namespace, config: AppConfig) -> int:
    checks = await run_checks(config, getattr(args, "timeout", 2.0))
    result = report(checks)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    else:
        table = Table("check", "status", "detail", box=None, pad_edge=False)
        styles = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}
        for check in checks:
            table.add_row(check.name, f"[{styles[check.mark]}]{check.mark}[/]", check.detail)
        Console(width=None if sys.stdout.isatty() else 160).print(table)
    return EXIT_OK if result["ok"] else EXIT_FAILURE
