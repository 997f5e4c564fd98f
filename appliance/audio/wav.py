"""WAV files in and out, with errors a person can act on.

A small RIFF reader of our own rather than the `wave` module: `wave` rejects
float and extensible WAVs and silently accepts a file whose data chunk was cut
short. Every problem becomes one `WavError` line; stereo and any rate are
accepted and downmixed here (the caller resamples).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.audio.frames import AudioChunk, to_int16

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE
_MAX_CHANNELS = 32


class WavError(ValueError):
    """A file that is not a readable WAV; the message names the file and the problem."""


def read_wav(path: Path | str) -> AudioChunk:
    """Read a WAV file as mono int16 at its own sample rate."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WavError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_wav(data, name=str(path))


def decode_wav(data: bytes, name: str = "<wav>") -> AudioChunk:
    if len(data) < 12 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body : body + size], name)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError(f"{name}: data chunk comes before the fmt chunk")
            if body + size > len(data):
                have = len(data) - body
                raise WavError(f"{name}: truncated (data chunk declares {size} bytes, file has {have})")
            return _decode_samples(data[body : body + size], fmt, name)
        pos = body + size + (size & 1)
    if fmt is None:
        raise WavError(f"{name}: truncated or malformed (no fmt chunk)")
    raise WavError(f"{name}: truncated or malformed (no data chunk)")


def _parse_fmt(body: bytes, name: str) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise WavError(f"{name}: malformed fmt chunk")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE and len(body) >= 26:
        (tag,) = struct.unpack("<H", body[24:26])
    if tag not in (_PCM, _FLOAT):
        raise WavError(f"{name}: unsupported WAV encoding (format tag {tag}); use PCM or float")
    if not 1 <= channels <= _MAX_CHANNELS or not 1000 <= rate <= 384_000:
        raise WavError(f"{name}: implausible header ({channels} channels, {rate} Hz)")
    if (tag, bits) not in {(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32), (_FLOAT, 64)}:
        raise WavError(f"{name}: unsupported sample format ({bits}-bit, format tag {tag})")
    return tag, channels, rate, bits


def _decode_samples(raw: bytes, fmt: tuple[int, int, int, int], name: str) -> AudioChunk:
    tag, channels, rate, bits = fmt
    frame_bytes = channels * bits // 8
    usable = len(raw) - len(raw) % frame_bytes
    raw = raw[:usable]
    floats: npt.NDArray[np.float64]
    if tag == _FLOAT:
        floats = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float64)
        floats = np.nan_to_num(floats)
    elif bits == 8:
        floats = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif bits == 16:
        floats = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        floats = ints.astype(np.float64) / 8388608.0
    else:
        floats = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0
    mono = floats.reshape(-1, channels).mean(axis=1) if channels > 1 else floats
    return AudioChunk(to_int16(mono), rate)


def encode_wav(chunk: AudioChunk) -> bytes:
    """16-bit PCM mono WAV bytes."""
    payload = chunk.samples.astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(payload),
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        1,
        chunk.sample_rate,
        chunk.sample_rate * 2,
        2,
        16,
        b"data",
        len(payload),
    )
    return header + payload


def write_wav(path: Path | str, chunk: AudioChunk) -> None:
    """Write atomically, so a crash never leaves half a file where a result was expected."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(encode_wav(chunk))
    tmp.replace(path)
