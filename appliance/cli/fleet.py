"""`appliance fleet`: list devices, read and change their desired config, send commands, decommission."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, OperationalError, UsageError
from appliance.config import AppConfig
from appliance.fleet.operator import FleetError, Operator, describe_age, desired_vs_reported, parse_assignments


async def fleet_command(args: argparse.Namespace, config: AppConfig) -> int:
    mqtt = config.mqtt
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--broker must be HOST:PORT, not {args.broker!r}")
        mqtt = mqtt.model_copy(update={"host": host, "port": int(port)})
    operator = Operator(mqtt, timeout_s=args.timeout)
    if args.fleet_command == "simulate":
        from appliance.cli.fleet_simulate import simulate_command

        return await simulate_command(args, config, mqtt)
    if args.fleet_command == "rollout":
        from appliance.cli.fleet_rollout import rollout_command

        try:
            return await rollout_command(args, operator)
        except FleetError as exc:
            raise OperationalError(str(exc)) from None
    if args.fleet_command in ("top", "exporter"):
        from appliance.cli.fleet_watch import exporter_command, top_command

        watch = top_command if args.fleet_command == "top" else exporter_command
        try:
            return await watch(args, operator)
        except FleetError as exc:
            raise OperationalError(str(exc)) from None
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        if args.fleet_command == "ls":
            return _ls(await operator.devices(), args.json, console)
        if args.fleet_command == "decommission":
            return await _decommission(operator, args)
        if args.fleet_command == "announce":
            return await _announce(operator, args, config)
        devices = await operator.devices()
        expected = _expected(devices, args.target)
        if args.fleet_command == "get":
            return await _get(operator, devices, args.target)
        if args.fleet_command == "set":
            patch = parse_assignments(args.assignments)
            # Desired state reaches offline boxes later: only the ones online now are waited for.
            expected = {d["id"] for d in _targeted(devices, args.target) if d.get("state") == "online"}
            document, replies = await operator.set_desired(args.target, patch, args.version, expect=expected)
            print(f"desired config of {args.target} is now version {document['version']}: "
                  f"{json.dumps(document['patch'])}", file=sys.stderr)  # fmt: skip
            offline = sorted({d["id"] for d in _targeted(devices, args.target)} - expected)
            if offline:
                print(f"offline, will apply it when back: {', '.join(offline)}", file=sys.stderr)
            if not expected and not replies:
                return EXIT_OK
            return _show(replies, args, console, expected)
        arguments: dict[str, Any] = {}
        if args.arguments:
            try:
                arguments = json.loads(args.arguments)
            except json.JSONDecodeError as exc:
                raise UsageError(f"the command's arguments are not JSON: {exc}") from None
            if not isinstance(arguments, dict):
                raise UsageError("the command's arguments must be a JSON object")
        replies = await operator.command(args.target, args.name, arguments, expect=expected)
        return _show(replies, args, console, expected)
    except FleetError as exc:
        raise OperationalError(str(exc)) from None


def _single(target: str) -> bool:
    return target != "all" and not target.startswith("group:")


def _targeted(devices: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    if _single(target):
        return [d for d in devices if d["id"] == target]
    if target.startswith("group:"):
        return [d for d in devices if d.get("group") == target[6:]]
    return devices


def _expected(devices: list[dict[str, Any]], target: str) -> set[str]:
    """Who should answer: the device named, or every targeted device whose retained status says online."""
    if _single(target):
        return {target}
    return {d["id"] for d in _targeted(devices, target) if d.get("state") == "online"}


async def _get(operator: Operator, devices: list[dict[str, Any]], target: str) -> int:
    """One JSON line per targeted device: desired against reported, and the effective config."""
    targeted = _targeted(devices, target)
    if not targeted:
        raise OperationalError(f"no device {target} has a status on this broker")
    prefix = operator.mqtt.topic_prefix
    filters = [f"{prefix}/+/config/+", f"{prefix}/group/+/config/desired"]
    retained = await operator.retained(filters, listen_s=min(1.0, operator.timeout_s))
    for device in targeted:
        print(json.dumps(desired_vs_reported(device, retained, prefix)))
    return EXIT_OK


async def _announce(operator: Operator, args: argparse.Namespace, config: AppConfig) -> int:
    """Only a release the config's trusted keys verify is announced: what operators announce is what
    devices will accept."""
    from appliance.release.errors import ReleaseRefused
    from appliance.release.keys import trusted_keys
    from appliance.release.verify import verify_release

    if not args.release.is_file():
        raise UsageError(f"no release at {args.release}")
    try:
        verified = verify_release(args.release, trusted_keys(config.update.trusted_keys))
    except ReleaseRefused as exc:
        raise OperationalError(f"{exc.code.value}: {exc.message}; not announced") from None
    announcement = {"version": verified.manifest.version, "release": args.url, "sha256": verified.sha256,
                    "ts": time.time()}  # fmt: skip
    topic = await operator.announce_release(announcement)
    print(f"announced appliance {verified.manifest.version} on {topic} (sha256 {verified.sha256})", file=sys.stderr)
    return EXIT_OK


async def _decommission(operator: Operator, args: argparse.Namespace) -> int:
    known = {d["id"]: d for d in await operator.devices()}
    device = known.get(args.target)
    if device is not None and device.get("state") == "online" and not args.force:
        raise OperationalError(f"{args.target} is online and would announce itself again: stop it first (or --force)")
    cleared = await operator.decommission(args.target)
    print(f"cleared {len(cleared)} retained topics of {args.target}", file=sys.stderr)
    return EXIT_OK


def _ls(devices: list[dict[str, Any]], as_json: bool, console: Console) -> int:
    if as_json:
        for device in devices:
            print(json.dumps(device))
        return EXIT_OK
    table = Table("id", "group", "state", "version", "config version", "last seen")
    for d in devices:
        table.add_row(
            d["id"],
            str(d.get("group", "-")),
            str(d.get("state", "-")),
            str(d.get("version", "-")),
            str(d.get("config_version", "-")),
            describe_age(d.get("last_seen")),
        )
    console.print(table if devices else "no devices have a status on this broker")
    return EXIT_OK


def _show(
    replies: list[dict[str, Any]],
    args: argparse.Namespace,
    console: Console,
    expected: set[str],
    only_result: bool = False,
) -> int:
    if args.json or only_result:
        for reply in replies:
            print(json.dumps(reply.get("result") if only_result and reply.get("ok") else reply, indent=None))
    elif replies:
        table = Table("device", "ok", "result / error")
        for reply in replies:
            detail = reply.get("result") if reply.get("ok") else reply.get("error")
            table.add_row(str(reply.get("device", "-")), "yes" if reply.get("ok") else "no", json.dumps(detail))
        console.print(table)
    missing = sorted(expected - {str(r.get("device")) for r in replies})
    if missing or not replies:
        who = f" from {', '.join(missing)}" if missing else ""
        print(f"appliance: error: no reply within {args.timeout:g} s{who}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if all(r.get("ok") for r in replies) else EXIT_FAILURE
