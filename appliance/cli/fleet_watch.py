"""`appliance fleet top` (a live table of devices) and `appliance fleet exporter` (Prometheus metrics).

`top` on a terminal redraws the table (rich.live) every `--interval` seconds from the status, state
and telemetry topics until Ctrl-C; with `--once`, `--json` or stdout not a terminal it reads the
retained messages for a second, prints the table (or one JSON line per device) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from appliance.cli.errors import EXIT_OK, UsageError
from appliance.fleet.operator import FleetError, Operator, describe_age
from appliance.fleet.overview import COLUMNS, FleetView, OverviewError, row_filter, sort_rows

HEADERS = {"config_version": "config", "last_seen": "last seen", "cpu": "cpu %", "p95": "v2v p95 ms"}


async def top_command(args: argparse.Namespace, operator: Operator) -> int:
    order = f"-{args.sort.lstrip('-')}" if args.reverse and not args.sort.startswith("-") else args.sort
    try:
        keep = row_filter(args.filters)
        sort_rows([], order)  # a bad --sort fails now, not after a second of listening
    except OverviewError as exc:
        raise UsageError(str(exc)) from None
    view = FleetView(operator.mqtt.topic_prefix)

    def shown() -> list[dict[str, Any]]:
        return sort_rows([row for row in view.rows() if keep(row)], order)

    if args.once or args.json or not sys.stdout.isatty():
        retained = await operator.retained(view.topic_filters(), listen_s=min(1.0, args.timeout))
        for topic, data in retained.items():
            view.receive(topic, json.dumps(data).encode() if data is not None else b"")
        rows = shown()
        if args.json:
            for row in rows:
                print(json.dumps(row))
        else:
            Console(width=160).print(_table(rows))
        return EXIT_OK
    await _live(operator, view, shown, args.interval)
    return EXIT_OK


async def _live(operator: Operator, view: FleetView, shown: Any, interval: float) -> None:
    import aiomqtt

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with operator.client() as client:
            for topic_filter in view.topic_filters():
                await client.subscribe(topic_filter, qos=0)

            async def read() -> None:
                async for message in client.messages:
                    view.receive(str(message.topic), bytes(message.payload or b""))

            reading = asyncio.create_task(read())
            try:
                with Live(_table(shown()), auto_refresh=False, screen=False) as live:
                    while not stop.is_set() and not reading.done():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), interval)
                        live.update(_table(shown()), refresh=True)
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
    except aiomqtt.MqttError as exc:
        raise FleetError(f"lost the broker {operator.mqtt.host}:{operator.mqtt.port}: {exc}") from None


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} devices")
    widest_id = max((len(str(row["id"])) for row in rows), default=2)
    for column in COLUMNS:  # an id is never cut; the other columns give way on a narrow terminal
        table.add_column(HEADERS.get(column, column), no_wrap=True, min_width=widest_id if column == "id" else None)
    for row in rows:
        cells = {**row, "last_seen": describe_age(row["last_seen"])}
        table.add_row(*("-" if cells[c] is None else str(cells[c]) for c in COLUMNS))
    return table


async def exporter_command(args: argparse.Namespace, operator: Operator) -> int:
    """Serve /metrics until Ctrl-C or SIGTERM; the address it serves on is the first line on stderr."""
    from prometheus_client import start_http_server

    from appliance.fleet.exporter import feed_metrics
    from appliance.fleet.metrics import FleetMetrics

    if not args.share_group or any(c in args.share_group for c in "/+#"):
        raise UsageError(f"--share-group must be one topic level, not {args.share_group!r}")
    metrics = FleetMetrics(operator.mqtt.topic_prefix, stale_s=args.stale)
    try:
        server, thread = start_http_server(args.port, addr=args.bind, registry=metrics.registry())
    except OSError as exc:
        raise FleetError(f"cannot serve on {args.bind}:{args.port}: {exc}") from None
    print(f"exporter: serving http://{args.bind}:{server.server_port}/metrics", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await feed_metrics(
            operator,
            metrics,
            args.share_group,
            stop,
            lambda status: print(f"exporter: mqtt {status}", file=sys.stderr, flush=True),
        )
    finally:
        server.shutdown()
        thread.join(5)
    return EXIT_OK
