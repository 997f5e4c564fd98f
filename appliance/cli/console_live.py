"""`appliance console`: talk to the agent with the microphone and speaker, and watch it work.

On a terminal it shows a live panel: the state (listening / hearing / thinking / speaking), the
input level, the activation mode, transcripts as they come, the agent's words as they are
spoken, and each turn's latency line. Keys: space starts and ends a push-to-talk turn, `m`
mutes, `a` / `w` / `p` switch to always-listening / wake phrase / push-to-talk, `q` quits.
When stdout is not a terminal it prints the same events as plain lines (for logs and tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import termios
import tty
from collections import deque
from collections.abc import Iterator

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from appliance.app import Appliance
from appliance.cli.errors import EXIT_OK
from appliance.cli.serve import OUTPUT_RATE, device_options
from appliance.config import AppConfig
from appliance.control import Control
from appliance.transports.device import DeviceTransport
from appliance.transports.status import SoundDeviceStatus
from appliance.voice.activation import ActivationMode
from appliance.voice.state import SessionState
from appliance.voice.turn_record import TurnRecord

KEYS_HELP = "space: talk (push-to-talk)   m: mute   a: always   w: wake phrase   p: push-to-talk   q: quit"


class ConsoleView:
    def __init__(self, control: Control, transport: DeviceTransport, live: bool) -> None:
        self.control = control
        self.transport = transport
        self.live = live
        self.lines: deque[Text] = deque(maxlen=14)
        self.partial = ""
        self.device = "opening"
        control.on_state(self._state)
        control.on_transcript(self._transcript)
        control.on_agent_text(self._agent)
        control.on_turn(self._turn)
        transport.on_status.connect(self._device)

    def _emit(self, text: Text) -> None:
        if self.live:
            self.lines.append(text)
        else:
            print(text.plain, flush=True)

    def _state(self, state: SessionState) -> None:
        if not self.live:
            print(f"[{state.value}]", flush=True)

    def _transcript(self, text: str, final: bool) -> None:
        if final:
            self.partial = ""
            self._emit(Text.assemble(("you: ", "bold cyan"), text))
        else:
            self.partial = text
            if not self.live:
                print(f"you (so far): {text}", flush=True)

    def _agent(self, text: str) -> None:
        self._emit(Text.assemble(("agent: ", "bold green"), text))

    def _turn(self, record: TurnRecord) -> None:
        line = (
            f"turn {record.turn}: {record.latency_summary()}"
            + (" interrupted" if record.interrupted else "")
            + (f" error: {record.error}" if record.error else "")
        )
        self._emit(Text(line, style="dim"))

    def _device(self, status: SoundDeviceStatus) -> None:
        self.device = str(status)
        if not self.live:
            print(f"sound device: {status}", flush=True)

    def render(self) -> Panel:
        now = self.control.state()
        state = "hearing" if now.hearing else now.state
        level = max(-60.0, min(0.0, self.transport.input_level_dbfs))
        bar = "█" * int((level + 60) / 3)
        mode = now.mode + (" (talking)" if now.talk_pressed else "")
        header = Text.assemble(
            ("state ", "dim"),
            (f"{state:<10}", "bold yellow"),
            ("  mode ", "dim"),
            (f"{mode:<22}", "bold"),
            ("  mic ", "dim"),
            (f"{bar:<20}", "green"),
            f" {level:5.0f} dBFS",
            ("  device ", "dim"),
            self.device,
        )
        body: list[Text] = [header, Text("")]
        body.extend(self.lines)
        if self.partial:
            body.append(Text.assemble(("you (so far): ", "cyan"), self.partial))
        return Panel(Group(*body), title="appliance console", subtitle=KEYS_HELP)


def handle_key(key: str, control: Control, stop: asyncio.Event) -> None:
    modes = {"a": ActivationMode.ALWAYS, "w": ActivationMode.WAKE, "p": ActivationMode.PUSH_TO_TALK}
    if key == "q":
        stop.set()
    elif key == " ":
        control.push_to_talk()
    elif key == "m":
        control.toggle_mute()
    elif key in modes:
        control.choose_mode(modes[key])


@contextlib.contextmanager
def _raw_keys() -> Iterator[None]:
    """Single key presses without Enter, restored on the way out."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def console_live(config: AppConfig) -> int:
    appliance = await Appliance.started(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        session = appliance.new_session(OUTPUT_RATE)
        transport = DeviceTransport(session, device_options(config))
        control = Control(session, appliance=appliance)
        view = ConsoleView(control, transport, live=interactive)
        running = asyncio.create_task(transport.run(stop))
        if interactive:
            loop.add_reader(sys.stdin.fileno(), lambda: handle_key(sys.stdin.read(1), control, stop))
            with _raw_keys(), Live(view.render(), refresh_per_second=10, transient=False) as live:
                while not stop.is_set():
                    live.update(view.render())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
            loop.remove_reader(sys.stdin.fileno())
        await running
        await session.aclose()
    finally:
        await appliance.aclose()
    return EXIT_OK
