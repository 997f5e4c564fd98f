"""`appliance console --text`: type to the agent, read its replies as they stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from appliance.app import make_agent, session_options
from appliance.cli import EXIT_OK, EXIT_USAGE, CliError
from appliance.config import AppConfig
from appliance.ops.manifest import load_manifest
from appliance.ops.model_store import ModelStore, ModelStoreError
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import ProviderConfigError, build_llm
from appliance.transports.text import TextConversation


async def console_command(args: argparse.Namespace, config: AppConfig) -> int:
    if args.list_devices:
        from appliance.commands.devices import device_table

        print(device_table())
        return EXIT_OK
    if not args.text:
        from appliance.commands.console_live import console_live

        return await console_live(config)
    store = ModelStore(config.models.dir, load_manifest())
    try:
        agent = make_agent(config)
        llm = build_llm(
            config.llm.provider[0],
            store,
            ComputeBudget.for_cores(config.compute.threads),
            config.llm.context_tokens,
        )
    except (ProviderConfigError, KeyError) as exc:
        raise CliError(str(exc).strip("'\""), EXIT_USAGE) from None
    except ModelStoreError as exc:
        raise CliError(str(exc)) from None
    options = session_options(config)
    conversation = TextConversation(llm, agent, options.llm, options.history_chars)
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
