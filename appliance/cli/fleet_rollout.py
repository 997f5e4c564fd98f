"""`appliance fleet rollout start|status|pause|resume|abort`: staged rollouts of a config patch or a signed
release (`fleet/rollout.py`)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from rich.console import Console

from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, UsageError
from appliance.cli.rollout_view import RolloutView
from appliance.fleet.operator import FleetError, Operator, parse_assignments
from appliance.fleet.rollout import (
    NAME,
    Rollout,
    RolloutOptions,
    describe,
    load_document,
    new_document,
    plan_batches,
    publish_document,
)
from appliance.fleet.rollout_release import ReleaseRef, release_fields


async def rollout_command(args: argparse.Namespace, operator: Operator) -> int:
    action = args.rollout_action
    if action == "start":
        return await _start(args, operator)
    document = await load_document(operator, _name(args.name))
    if action == "status":
        return _status(document, args.json)
    if action in ("pause", "abort"):
        if document["state"] not in ("running", "paused"):
            raise FleetError(f"rollout {document['name']} is {document['state']}: nothing to {action}")
        if action == "abort" and document["state"] == "paused":
            # Nobody is running it: roll back here.
            finished = await _carry_out(operator, document, args.json, abort=True)
            return _status(finished, args.json)
        document["state"] = "paused" if action == "pause" else "aborting"
        await publish_document(operator, document)
        print(f"rollout {document['name']}: {document['state']} (the running rollout obeys at its next step)",
              file=sys.stderr)  # fmt: skip
        return EXIT_OK
    if document["state"] not in ("paused", "running"):
        raise FleetError(f"rollout {document['name']} is {document['state']}: it cannot be resumed")
    return _finished(await _carry_out(operator, document, args.json), args.json)


async def _start(args: argparse.Namespace, operator: Operator) -> int:
    name = _name(args.name or f"rollout-{uuid.uuid4().hex[:6]}")
    change = _change(args)
    if args.deadline <= 0:
        raise UsageError(f"--deadline must be more than 0 seconds, not {args.deadline:g}")
    options = RolloutOptions(
        canary=_share(args.canary, "--canary"),
        batch=_share(args.batch, "--batch"),
        pause_s=args.pause,
        settle_s=args.settle,
        max_failures=args.max_failures,
        v2v_margin=_share(args.v2v_margin, "--v2v-margin"),
        deadline_s=args.deadline,
    )
    devices = await operator.devices()
    target = args.target
    if target == "all":
        chosen = [d for d in devices if d.get("state") == "online"]
    elif target.startswith("group:"):
        chosen = [d for d in devices if d.get("group") == target[6:] and d.get("state") == "online"]
    else:
        chosen = [d for d in devices if d["id"] == target]
    if not chosen:
        raise FleetError(f"no device of {target} is online")
    batches = plan_batches([str(d["id"]) for d in chosen], options)
    document = new_document(name, target, change, batches, options)
    sizes = ", ".join(str(len(b)) for b in batches)
    print(f"rollout {name}: {len(chosen)} devices in {len(batches)} batches ({sizes}), canary first", file=sys.stderr)
    return _finished(await _carry_out(operator, document, args.json), args.json)


def _change(args: argparse.Namespace) -> dict[str, Any]:
    """Exactly one of: key=value assignments (a config patch), or --release with its sha256."""
    if args.assignments and args.release:
        raise UsageError("a rollout is of key=value assignments or of --release, not both")
    if not args.release:
        if not args.assignments:
            raise UsageError("nothing to roll out: give key=value assignments or --release URL_OR_PATH --sha256 HEX")
        for option in ("sha256", "version", "rollback_release", "rollback_sha256", "rollback_version"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option.replace('_', '-')} goes with --release")
        return {"kind": "config", "patch": parse_assignments(args.assignments)}
    try:
        release = ReleaseRef.parse(args.release, args.sha256, args.version)
        rollback = None
        if args.rollback_release is not None:
            rollback = ReleaseRef.parse(args.rollback_release, args.rollback_sha256, args.rollback_version,
                                        "--rollback-release")  # fmt: skip
        elif args.rollback_sha256 is not None or args.rollback_version is not None:
            raise ValueError("--rollback-sha256 and --rollback-version go with --rollback-release")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return release_fields(release, rollback)


def _finished(document: dict[str, Any], as_json: bool) -> int:
    _status(document, as_json)
    return EXIT_OK if document["state"] in ("done", "paused") else EXIT_FAILURE


def _status(document: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(document))
        return EXIT_OK
    results: dict[str, int] = {}
    for record in document["devices"].values():
        results[record["result"]] = results.get(record["result"], 0) + 1
    total = sum(len(b) for b in document["batches"])
    why = f"; {document['reason']}" if document.get("reason") else ""
    print(f"rollout {document['name']} of {describe(document)} to {document['target']}: "
          f"{document['state']}, batch {document['next_batch']} of {len(document['batches'])}, "
          f"{total} devices: {json.dumps(results)}{why}")  # fmt: skip
    for device, record in sorted(document["devices"].items()):
        said = "; ".join(str(record[key]) for key in ("reason", "rollback") if record.get(key))
        if said:
            print(f"  {device}: {record['result']}: {said}")
    return EXIT_OK


async def _carry_out(
    operator: Operator, document: dict[str, Any], as_json: bool, abort: bool = False
) -> dict[str, Any]:
    """Run (or roll back) the rollout: a live view on a terminal, progress lines otherwise."""
    console = Console(stderr=True)
    if as_json or not console.is_terminal:
        rollout = Rollout(operator, document, _progress)
        return await (rollout.run_abort() if abort else rollout.run())
    with RolloutView(console) as view:
        view.document(document)
        rollout = Rollout(operator, document, view.line, saved=view.document)
        return await (rollout.run_abort() if abort else rollout.run())


def _progress(line: str) -> None:
    print(f"rollout: {line}", file=sys.stderr, flush=True)


def _name(name: str) -> str:
    if not NAME.match(name):
        raise UsageError(f"a rollout name is 1-64 letters, digits, - or _, not {name!r}")
    return name


def _share(text: str, option: str) -> float:
    """`5%` or `0.05`."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"{option} takes a share like 5% or 0.05, not {text!r}") from None
    if not 0 <= value <= 1:
        raise UsageError(f"{option} must be between 0% and 100%, not {text!r}")
    return value
