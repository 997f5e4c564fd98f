"""A broken cloud on loopback: an OpenAI-compatible HTTP server that fails on demand.

Modes: ok, status:<code> (with Retry-After on 429), hang (accept, never answer), slow:<seconds>
(first byte late), cut (a stream that stops half-way), malformed (200 with garbage), and
`stop()` for a network that disappears (connections refused from then on).

Chat completions can be scripted one request at a time (`script`): a text answer, or tool calls
streamed in small pieces as OpenAI sends them, each possibly cut half-way. `bodies` keeps every
chat request as sent, so a test can see the tools, the tool choice and the history.
Written for the tests with the standard library, so every failure is exactly the one asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Completion:
    """One scripted chat answer: `text`, then `tool_calls` ((name, arguments JSON) pairs); `cut`
    drops the connection half-way through it (in the middle of the first call's arguments)."""

    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    cut: bool = False


class FaultServer:
    def __init__(self) -> None:
        self.mode = "ok"
        self.reply = "Hello from the cloud."
        self.requests: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        """Every chat completion request's JSON body, in order."""
        self.script: list[Completion] = []
        """Answers for the next chat requests, one each, in order; when empty, `reply` (and `mode`)."""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """The network disappears: the port refuses connections from now on."""
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)

    def restart(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._cancel_handlers(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _cancel_handlers(self) -> None:
        """Hung connections (mode "hang") end with the server, quietly."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split()[1]
            length = next((int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length")), 0)
            body = await reader.readexactly(length) if length else b""
            self.requests.append(path)
            await self._respond(path, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode == "hang":
            await asyncio.sleep(3600)
            return
        if mode.startswith("slow:"):
            await asyncio.sleep(float(mode[5:]))
        if mode.startswith("status:"):
            code = int(mode[7:])
            extra = "Retry-After: 2\r\n" if code == 429 else ""
            payload = json.dumps({"error": {"message": f"scripted {code}", "type": "error"}}).encode()
            writer.write(
                f"HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        if mode == "malformed":
            payload = b"{this is not json"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        if path.endswith("/chat/completions"):
            with contextlib.suppress(ValueError):
                self.bodies.append(json.loads(body))
            if self.script:
                await self._scripted(writer, self.script.pop(0))
            else:
                await self._chat(writer, cut=mode == "cut")
        elif path.endswith("/audio/transcriptions"):
            payload = json.dumps({"text": self.reply}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
        elif path.endswith("/audio/speech"):
            await self._speech(writer, cut=mode == "cut")
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async def _chat(self, writer: asyncio.StreamWriter, cut: bool) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        words = self.reply.split(" ")
        for index, word in enumerate(words):
            if cut and index == 2:
                await writer.drain()
                writer.transport.abort()  # the connection dies half-way through the stream
                return
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "m",
                "choices": [
                    {"index": 0, "delta": {"content": word if index == 0 else " " + word}, "finish_reason": None}
                ],
            }
            writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(0.01)
        final = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        writer.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())

    async def _scripted(self, writer: asyncio.StreamWriter, answer: Completion) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        deltas: list[dict[str, Any]] = [{"content": word} for word in answer.text.split(" ") if answer.text]
        deltas = [{"content": (" " if i else "") + d["content"]} for i, d in enumerate(deltas)]
        cut_at = None
        for index, (name, arguments) in enumerate(answer.tool_calls):
            deltas.append({"tool_calls": [{"index": index, "id": f"call_{index}_{name}", "type": "function",
                                           "function": {"name": name, "arguments": ""}}]})  # fmt: skip
            for start in range(0, len(arguments), 4):
                if cut_at is None and start > 0:
                    cut_at = len(deltas)
                deltas.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 4]}}]}
                )
        if answer.cut and cut_at is None:
            cut_at = len(deltas) // 2
        for position, delta in enumerate(deltas):
            if answer.cut and position == cut_at:
                await writer.drain()
                writer.transport.abort()  # the connection dies in the middle of the answer
                return
            writer.write(f"data: {json.dumps(_chunk(delta, None))}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(0.005)
        finish = "tool_calls" if answer.tool_calls else "stop"
        writer.write(f"data: {json.dumps(_chunk({}, finish))}\n\ndata: [DONE]\n\n".encode())

    async def _speech(self, writer: asyncio.StreamWriter, cut: bool) -> None:
        t = np.arange(24_000) / 24_000
        pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/pcm\r\nConnection: close\r\n\r\n")
        half = len(pcm) // 2
        writer.write(pcm[:half])
        await writer.drain()
        if cut:
            writer.transport.abort()
            return
        writer.write(pcm[half:])


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
