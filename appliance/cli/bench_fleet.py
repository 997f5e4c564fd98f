"""`appliance bench --fleet N [--bridged]`: the fleet at size (`bench/fleet_scale.py`), as a table or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from appliance.bench.fleet_scale import FleetBenchError, fleet_bench
from appliance.bench.mosquitto import MosquittoError
from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, OperationalError


async def fleet_bench_command(args: argparse.Namespace) -> int:
    try:
        result = await fleet_bench(args.fleet, args.bridged, args.jitter)
    except (FleetBenchError, MosquittoError) as exc:
        raise OperationalError(str(exc)) from None
    if args.json:
        print(json.dumps({"fleet": result}, indent=2))
    else:
        _print(result)
    phases = result["phases"]
    complete = (
        phases["set_all"]["lost"] == 0
        and phases["desired_while_away"]["lost"] == 0
        and phases["rollout"].get("state") == "done"
        and phases["broker_restart"]["online_listed_after"] == result["devices"]
    )
    return EXIT_OK if complete else EXIT_FAILURE


def _print(result: dict[str, Any]) -> None:
    phases = result["phases"]
    brokers = "one Mosquitto" if result["brokers"] == 1 else f"{result['brokers']} Mosquittos bridged"
    print(f"fleet bench: {result['devices']} simulated devices on {brokers}, connects over {result['jitter_s']:g} s")
    print(f"{'phase':<20}{'time':>10}{'result':>44}{'broker CPU':>12}{'sim CPU':>10}")
    for name, record in phases.items():
        print(f"{name:<20}{record['seconds']:>9.1f}s{_outcome(name, record):>44}"
              f"{record['broker_cpu_pct']:>11.1f}%{record['simulator_cpu_pct']:>9.1f}%")  # fmt: skip
    per = result["per_1000_devices"]
    print(
        f"per 1,000 connected devices at rest: broker {per['broker_cpu_pct']} % of a core, {per['broker_rss_mb']} MB; "
        f"simulator {per['simulator_cpu_pct']} % of a core, {per['simulator_rss_mb']} MB"
    )


def _outcome(name: str, record: dict[str, Any]) -> str:
    if name in ("connect", "broker_restart"):
        extra = f", {record['online_listed_after']} listed" if "online_listed_after" in record else ""
        return f"all online in {record['all_online_s']:.1f} s{extra}"
    if name == "ls":
        runs = [v for k, v in record.items() if k.startswith("port_")]
        return "; ".join(f"{r['online_listed']} listed in {r['seconds']:.1f} s" for r in runs)
    if name in ("set_all", "desired_while_away"):
        return f"{record['applied']} applied, {record['lost']} lost, p50 {record['p50_ms']} p99 {record['p99_ms']} ms"
    if name == "rollout":
        return f"{record['state']}: {record['healthy']} ok, {record['failed']} failed, {record['batches']} batches"
    return ""
