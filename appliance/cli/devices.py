"""Which sound devices PortAudio offers, without failing where there are none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DefaultDevices:
    input: str | None
    output: str | None
    reason: str = ""


def default_devices() -> DefaultDevices:
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        return DefaultDevices(None, None, f"PortAudio is not available: {exc}")
    except ImportError:
        return DefaultDevices(None, None, "the sounddevice package is not installed")
    try:
        devices = sd.query_devices()
    except Exception as exc:
        return DefaultDevices(None, None, f"PortAudio failed: {exc}")
    inputs = [d["name"] for d in devices if d["max_input_channels"] > 0]
    outputs = [d["name"] for d in devices if d["max_output_channels"] > 0]
    reason = "" if inputs and outputs else "PortAudio lists no " + ("input" if not inputs else "output") + " device"
    return DefaultDevices(inputs[0] if inputs else None, outputs[0] if outputs else None, reason)


def device_table() -> str:
    """Every PortAudio device with its index, for `[audio] input_device` / `output_device`."""
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except Exception as exc:
        return f"no sound devices: {exc}"
    if len(devices) == 0:
        return "no sound devices (PortAudio lists none)"
    lines = [f"{'index':>5}  {'in':>3}  {'out':>3}  {'rate':>6}  name"]
    for device in devices:
        lines.append(
            f"{device['index']:>5}  {device['max_input_channels']:>3}  {device['max_output_channels']:>3}  "
            f"{int(device['default_samplerate']):>6}  {device['name']}"
        )
    return "\n".join(lines)
