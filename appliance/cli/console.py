"""`appliance console --text`: type to the agent, read its replies as they stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from appliance.app import make_agent, session_options
from appliance.cli.errors import EXIT_OK
from appliance.config import AppConfig
from appliance.engines import Engines
from appliance.voice.text_conversation import TextConversation


async def console_command(args: argparse.Namespace, config: AppConfig) -> int:
    if args.list_devices:
        from appliance.cli.devices import device_table

        print(device_table())
        return EXIT_OK
    if not args.text:
        from appliance.cli.console_live import console_live

        return await console_live(config)
    agent = make_agent(config)
    engines = Engines(config)
    engines.check()
    llm = engines.llm()  # the whole chain, fallback and cloud included
    options = session_options(config)
    conversation = TextConversation(llm, agent, options.llm, options.history_chars, options.max_tool_steps)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"talking to '{agent.name}' ({llm.descriptor}); an empty line or Ctrl-D ends", file=sys.stderr)
    try:
        while True:
            if interactive:
                print("you> ", end="", flush=True, file=sys.stderr)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or (interactive and not line.strip()):
                break
            if not line.strip():
                continue
            while not conversation.announcements.empty():
                print(f"agent> {conversation.announcements.get_nowait()}", flush=True)
            print("agent> ", end="", flush=True)
            async for piece in conversation.reply(line.strip()):
                print(piece, end="", flush=True)
            print(flush=True)
            if not interactive and conversation.last_record is not None:
                print(json.dumps(conversation.last_record.to_json()), file=sys.stderr, flush=True)
    finally:
        await llm.aclose()
    return EXIT_OK
