"""`appliance doctor`: is this box ready? Models, engines, audio devices, settings."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass

from appliance.cli import EXIT_FAILURE, EXIT_OK
from appliance.commands.devices import default_devices
from appliance.config import AppConfig
from appliance.ops.manifest import load_manifest
from appliance.ops.model_store import ModelStore
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import ProviderConfigError, check_descriptor
from appliance.providers.secrets import SecretError, resolve_secret


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def run_checks(config: AppConfig) -> list[Check]:
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0])]
    for module in ("onnxruntime", "faster_whisper", "llama_cpp", "piper", "soxr"):
        found = importlib.util.find_spec(module) is not None
        checks.append(Check(f"engine package {module}", found, "installed" if found else "missing: scripts/setup"))
    chains = {
        "vad": [config.vad.provider],
        "stt": config.stt.provider,
        "llm": config.llm.provider,
        "tts": config.tts.provider,
    }
    for stage, chain in chains.items():
        for descriptor in chain:
            try:
                check_descriptor(stage, descriptor, config.providers)
                checks.append(Check(f"{stage} provider", True, descriptor))
            except ProviderConfigError as exc:
                checks.append(Check(f"{stage} provider", False, str(exc)))
    for name, endpoint in config.providers.items():
        try:
            resolve_secret(endpoint.api_key)
            checks.append(
                Check(
                    f"secret for {name}",
                    True,
                    endpoint.api_key or "none needed"
                    if not endpoint.api_key or endpoint.api_key.startswith(("env:", "file:"))
                    else "inline (prefer env: or file:)",
                )
            )
        except SecretError as exc:
            checks.append(Check(f"secret for {name}", False, str(exc), required=False))
    store = ModelStore(config.models.dir, load_manifest())
    for row in store.list_rows():
        if not row.default and not row.present:
            continue
        detail = "verified" if row.verified else ("corrupted" if row.present else "missing: appliance models fetch")
        checks.append(Check(f"model {row.name}", row.verified, detail, required=row.default))
    devices = default_devices()
    wants_audio = config.audio.input == "device" or config.audio.output == "device"
    audio_ok = devices.input is not None and devices.output is not None
    detail = f"in: {devices.input}, out: {devices.output}" if audio_ok else devices.reason
    checks.append(Check("sound devices", audio_ok, detail, required=False))
    if wants_audio and not audio_ok:
        checks.append(Check("audio mode", True, "no sound card: `appliance run` answers a bundled wav", False))
    budget = ComputeBudget.for_cores(config.compute.threads)
    checks.append(
        Check(
            "compute budget",
            True,
            f"{budget.cores} cores: stt {budget.stt}, llm {budget.llm}, tts {budget.tts}, vad {budget.vad} threads",
        )
    )
    checks.append(Check("mqtt", True, "enabled" if config.mqtt.enabled else "off", required=False))
    checks.append(Check("livekit", True, "configured" if config.livekit.url else "off", required=False))
    return checks


async def doctor_command(args: argparse.Namespace, config: AppConfig) -> int:
    checks = run_checks(config)
    for check in checks:
        mark = "ok " if check.ok else ("ERR" if check.required else "warn")
        print(f"[{mark:<4}] {check.name}: {check.detail}")
    failed = [c for c in checks if c.required and not c.ok]
    return EXIT_FAILURE if failed else EXIT_OK
