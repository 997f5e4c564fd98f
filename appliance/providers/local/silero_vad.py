"""Silero VAD (v5/v6 ONNX) on onnxruntime, streaming with its state carried.

The model wants 512 new samples at 16 kHz plus the last 64 samples of the
previous frame as context, and returns a recurrent state to feed back in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.audio.frames import ENGINE_RATE, Int16Array, to_float32
from appliance.providers.base import VAD
from appliance.providers.workers import EngineWorker

_CONTEXT = 64


class SileroVAD(VAD):
    frame_samples = 512

    def __init__(self, model_path: Path, threads: int = 1, descriptor: str = "local/silero-vad") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self._sr = np.array(ENGINE_RATE, dtype=np.int64)
        self._worker = EngineWorker("vad")
        self.descriptor = descriptor
        self.reset()

    def reset(self) -> None:
        self._state: npt.NDArray[np.float32] = np.zeros((2, 1, 128), dtype=np.float32)
        self._context: npt.NDArray[np.float32] = np.zeros(_CONTEXT, dtype=np.float32)

    def probability_sync(self, frame: Int16Array) -> float:
        if len(frame) != self.frame_samples:
            raise ValueError(f"Silero VAD takes {self.frame_samples}-sample frames, got {len(frame)}")
        samples = to_float32(frame)
        x = np.concatenate([self._context, samples])[np.newaxis, :]
        out, state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._state = state
        self._context = samples[-_CONTEXT:]
        return float(out[0][0])

    async def probability(self, frame: Int16Array) -> float:
        return await self._worker.run(lambda: self.probability_sync(frame))

    async def aclose(self) -> None:
        await self._worker.aclose()
