"""A device under a temporary root: release wheels, the default models as hard links, a broker, the rig."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.models.manifest import load_manifest
from tests.integration.broker import Broker, mosquitto
from tests.integration.firmware.releases import build_and_sign, keygen
from tests.integration.firmware.rig import DeviceRig, ReleaseKit
from tests.integration.firmware.wheel import build_wheel


@pytest.fixture(scope="session")
def release_kit(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKit:
    """A trusted key, and releases 1.0.0 and 1.1.0 built with `appliance release build` and signed by it."""
    base = tmp_path_factory.mktemp("releases")
    key = base / "release.key"
    public = keygen(key)
    wheels = {version: build_wheel(version, base / "wheels") for version in ("1.0.0", "1.1.0")}
    releases = {version: build_and_sign(wheel, base / "out", key) for version, wheel in wheels.items()}
    return ReleaseKit(key, public, releases)


@pytest.fixture(scope="session")
def default_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default models of the real store, as hard links (what a device carries; no copying)."""
    store = tmp_path_factory.mktemp("models")
    for model in load_manifest().defaults():
        for file in model.files:
            target = store / model.name / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(models_dir / model.name / file.path, target)
    return store


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


@pytest.fixture
def rig(tmp_path: Path, release_kit: ReleaseKit, default_models: Path) -> DeviceRig:
    device = DeviceRig(tmp_path, release_kit, default_models)
    assert device.provision().code == 0
    return device


@pytest.fixture
def mqtt_rig(tmp_path: Path, release_kit: ReleaseKit, default_models: Path, broker: Broker) -> DeviceRig:
    device = DeviceRig(tmp_path, release_kit, default_models, broker_port=broker.port)
    assert device.provision().code == 0
    return device
