"""WAV reading/writing (all the PCM flavours, broken files) and sample-rate conversion."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frames import AudioChunk
from appliance.audio.resample import StreamResampler, resample
from appliance.audio.wav import WavError, decode_wav, encode_wav, read_wav, write_wav

PCM = 1
FLOAT = 3
ADPCM = 2


def _wav(
    payload: bytes,
    *,
    tag: int = PCM,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    data_size: int | None = None,
) -> bytes:
    """A canonical RIFF/WAVE file built by hand; `data_size` lets the header lie about the payload."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


# ----- encode / decode --------------------------------------------------------------------


def test_int16_round_trips_through_encode_and_decode() -> None:
    samples = np.array([0, 1, -1, 1234, -1234, 32767, -32768], dtype=np.int16)
    decoded = decode_wav(encode_wav(AudioChunk(samples, 22050)))
    assert decoded.sample_rate == 22050
    assert decoded.samples.dtype == np.int16
    np.testing.assert_array_equal(decoded.samples, samples)


def test_int16_round_trips_through_a_file(tmp_path: Path) -> None:
    samples = np.arange(-500, 500, dtype=np.int16)
    path = tmp_path / "out.wav"
    write_wav(path, AudioChunk(samples, 16000))
    chunk = read_wav(path)
    assert chunk.sample_rate == 16000
    np.testing.assert_array_equal(chunk.samples, samples)


def test_write_wav_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_wav(tmp_path / "out.wav", AudioChunk(np.zeros(10, dtype=np.int16), 16000))
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_8_bit_unsigned_pcm_decodes_to_int16() -> None:
    data = _wav(bytes([0, 64, 128, 192, 255]), bits=8)
    np.testing.assert_array_equal(decode_wav(data).samples, [-32768, -16384, 0, 16384, 32512])


def test_24_bit_pcm_decodes_to_int16() -> None:
    values = [0, 0x123400, -0x123400, 0x7FFF00, -0x800000]
    payload = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    data = _wav(payload, bits=24)
    np.testing.assert_array_equal(decode_wav(data).samples, [0, 0x1234, -0x1234, 32767, -32768])


def test_32_bit_int_pcm_decodes_to_int16() -> None:
    values = [0, 0x12340000, -0x12340000, 0x7FFF0000, -0x80000000]
    data = _wav(struct.pack("<5i", *values), bits=32)
    np.testing.assert_array_equal(decode_wav(data).samples, [0, 0x1234, -0x1234, 32767, -32768])


def test_float32_pcm_decodes_to_int16_with_clipping() -> None:
    values = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0]
    data = _wav(struct.pack("<7f", *values), tag=FLOAT, bits=32)
    np.testing.assert_array_equal(decode_wav(data).samples, [0, 16384, -16384, 32767, -32768, 32767, -32768])


def test_stereo_is_averaged_to_mono() -> None:
    frames = [(1000, 3000), (-2000, 2000), (-32768, -32768), (100, -300)]
    payload = b"".join(struct.pack("<hh", left, right) for left, right in frames)
    chunk = decode_wav(_wav(payload, channels=2, rate=44100))
    assert chunk.sample_rate == 44100
    np.testing.assert_array_equal(chunk.samples, [2000, 0, -32768, -100])


def test_extensible_format_with_pcm_subformat_decodes() -> None:
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 16000, 32000, 2, 16)
    fmt += struct.pack("<HHI", 22, 16, 0x4) + struct.pack("<H", PCM) + b"\x00" * 14
    payload = struct.pack("<3h", 1, -2, 3)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 6) + payload
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    np.testing.assert_array_equal(decode_wav(data).samples, [1, -2, 3])


def test_wav_with_zero_samples_decodes_to_an_empty_chunk() -> None:
    chunk = decode_wav(_wav(b""))
    assert len(chunk) == 0
    assert chunk.samples.dtype == np.int16
    assert chunk.sample_rate == 16000


# ----- broken files -----------------------------------------------------------------------


def test_file_truncated_in_the_data_chunk_is_reported_as_truncated() -> None:
    data = _wav(struct.pack("<5h", 1, 2, 3, 4, 5), data_size=3200)
    with pytest.raises(WavError, match="truncated"):
        decode_wav(data, name="cut.wav")


def test_header_only_file_is_reported_as_truncated() -> None:
    data = _wav(b"", data_size=32000)
    assert len(data) == 44
    with pytest.raises(WavError, match="truncated"):
        decode_wav(data)


def test_riff_header_without_chunks_is_a_wav_error() -> None:
    data = b"RIFF" + struct.pack("<I", 4) + b"WAVE"
    with pytest.raises(WavError, match="no fmt chunk"):
        decode_wav(data)


def test_text_file_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is just some text, not audio at all\n")
    with pytest.raises(WavError, match="not a WAV") as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_empty_file_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(WavError, match="not a WAV"):
        read_wav(path)


def test_missing_file_is_a_wav_error(tmp_path: Path) -> None:
    with pytest.raises(WavError, match="cannot read"):
        read_wav(tmp_path / "absent.wav")


def test_unsupported_format_tag_is_a_wav_error() -> None:
    data = _wav(b"\x00" * 64, tag=ADPCM, bits=4)
    with pytest.raises(WavError, match="format tag 2"):
        decode_wav(data)


def test_unsupported_bit_depth_is_a_wav_error() -> None:
    data = _wav(b"\x00" * 16, bits=12)
    with pytest.raises(WavError, match="12-bit"):
        decode_wav(data)


# ----- resampling -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_resample_keeps_the_length_ratio(rate: int) -> None:
    chunk = AudioChunk(_sine(1000, rate, 1.0), rate)
    out = resample(chunk, 16000)
    assert out.sample_rate == 16000
    assert out.samples.dtype == np.int16
    assert abs(len(out) - 16000) <= 4


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_resample_keeps_the_frequency(rate: int) -> None:
    out = resample(AudioChunk(_sine(1000, rate, 1.0), rate), 16000)
    assert abs(_peak_hz(out.samples, 16000) - 1000) <= 2


def test_resample_to_the_same_rate_is_a_no_op() -> None:
    chunk = AudioChunk(_sine(1000, 16000, 0.1), 16000)
    assert resample(chunk, 16000) is chunk


def test_resample_of_an_empty_chunk_is_empty_at_the_new_rate() -> None:
    out = resample(AudioChunk(np.zeros(0, dtype=np.int16), 44100), 16000)
    assert len(out) == 0
    assert out.sample_rate == 16000


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_stream_resampler_in_10ms_blocks_matches_whole_chunk_length(rate: int) -> None:
    samples = _sine(1000, rate, 1.0)
    stream = StreamResampler(rate, 16000)
    block = rate // 100
    parts = [stream.push(samples[i : i + block]) for i in range(0, len(samples), block)]
    parts.append(stream.push(np.zeros(0, dtype=np.int16), last=True))
    total = sum(len(p) for p in parts)
    assert abs(total - len(resample(AudioChunk(samples, rate), 16000))) <= 4


def test_stream_resampler_at_the_same_rate_passes_samples_through() -> None:
    samples = _sine(1000, 16000, 0.01)
    assert StreamResampler(16000, 16000).push(samples) is samples
