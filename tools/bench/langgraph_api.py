"""The LangGraph Server API (`/lg`) beside Dockrion's own stream, on one LangGraph graph, in
interleaved rounds; with `--langgraph-venv`, LangGraph Server itself (`langgraph dev`, its
in-memory runtime) on the same graph in the same rounds.

    hatch run bench:langgraph [--tokens 20000] [--rounds 3] [--requests 200]
        [--langgraph-venv ~/.cache/dockrion-bench-langgraph/langgraph-server]

Two workloads per target and round:
- stream: one run streaming `--tokens` tokens (`POST /invoke/stream` for Dockrion's own,
  `POST /lg/runs/stream` with `stream_mode: ["messages-tuple"]` for the prefix API and
  LangGraph Server): tokens per second, counted from the frames and checked complete.
- request/response: `--requests` runs of one token, 20 at a time (`POST /invoke`,
  `POST /lg/runs/wait`, LangGraph Server's `POST /runs/wait`): requests per second.

Each server is its own process on a free loopback port; the client is httpx on this
process's event loop. Medians over the rounds are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import harness

GRAPH = '''
"""A MessagesState graph whose chat model streams "t<i> " tokens: "n=<count>" in the last
human message says how many (one loop yield per token, as a network read gives)."""
import asyncio, re
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph


def count(messages):
    text = str(messages[-1].content)
    found = re.search(r"n=(\\d+)", text)
    return int(found.group(1)) if found else 1


class Tokens(BaseChatModel):
    @property
    def _llm_type(self):
        return "bench-tokens"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        text = "".join(f"t{i} " for i in range(count(messages)))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
        for i in range(count(messages)):
            await asyncio.sleep(0)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=f"t{i} "))
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


MODEL = Tokens()


async def chat(state: MessagesState):
    return {"messages": [await MODEL.ainvoke(state["messages"])]}


def build():
    graph = StateGraph(MessagesState)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    return graph.compile()


graph = build()
'''

DOCKFILE = """
version: "1.0"
agent: {name: chat, entrypoint: "bench_graph:build", framework: langgraph}
io_schema: {input: {type: object}}
expose:
  host: 127.0.0.1
  langgraph_api: {enabled: true}
streaming:
  events: {allowed: chat}
"""


# Every token's text starts with "t" in every format (a chunk's or a token event's
# content); LangGraph Server adds an empty last chunk, which this leaves out.
TOKEN = b'"content":"t'


def ask(n: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"n={n}"}]}


class Target:
    def __init__(self, name: str, url: str, kind: str) -> None:
        self.name, self.url, self.kind = name, url, kind

    def stream_request(self, n: int) -> tuple[str, dict[str, Any], bytes]:
        if self.kind == "own":
            return f"{self.url}/invoke/stream", ask(n), b"event: token"
        body = {"assistant_id": "chat", "input": ask(n), "stream_mode": ["messages-tuple"]}
        return f"{self.url}/runs/stream", body, TOKEN

    def wait_request(self) -> tuple[str, dict[str, Any]]:
        if self.kind == "own":
            return f"{self.url}/invoke", ask(1)
        return f"{self.url}/runs/wait", {"assistant_id": "chat", "input": ask(1)}


async def stream_rate(client: httpx.AsyncClient, target: Target, n: int) -> float:
    url, body, marker = target.stream_request(n)
    seen = 0
    tail = b""
    started = time.perf_counter()
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            data = tail + chunk
            seen += data.count(marker)
            tail = data[-len(marker) + 1 :] if len(data) >= len(marker) else data
            seen -= tail.count(marker)  # counted again with the next chunk
    seen += tail.count(marker)
    elapsed = time.perf_counter() - started
    if seen != n:
        raise RuntimeError(f"{target.name}: {seen} tokens of {n}")
    return n / elapsed


async def request_rate(client: httpx.AsyncClient, target: Target, count: int) -> float:
    url, body = target.wait_request()
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            queue.pop()
            response = await client.post(url, json=body)
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(20)))
    return count / (time.perf_counter() - started)


def wait_up(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up in 120 s")


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, list[float]]] = {t.name: {"tok": [], "req": []} for t in targets}

    def client() -> httpx.AsyncClient:
        # a new pool per workload: a server closes connections idle past its keep-alive
        return httpx.AsyncClient(
            timeout=httpx.Timeout(300), limits=httpx.Limits(max_connections=40)
        )

    for target in targets:  # warm up
        async with client() as warm:
            await stream_rate(warm, target, 200)
            await request_rate(warm, target, 20)
    for round_ in range(args.rounds):
        for target in targets if round_ % 2 == 0 else list(reversed(targets)):
            async with client() as streaming:
                results[target.name]["tok"].append(
                    await stream_rate(streaming, target, args.tokens)
                )
            async with client() as requesting:
                results[target.name]["req"].append(
                    await request_rate(requesting, target, args.requests)
                )
    return {
        name: {key: statistics.median(values) for key, values in figures.items()}
        for name, figures in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--langgraph-venv", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lg-api-bench-"))
    (folder / "bench_graph.py").write_text(textwrap.dedent(GRAPH))
    (folder / "Dockfile.yaml").write_text(DOCKFILE)
    (folder / "langgraph.json").write_text(
        '{"dependencies": ["."], "graphs": {"chat": "./bench_graph.py:graph"}}'
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port = harness.free_port()
        ours = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockrion_runtime",
                "serve",
                str(folder / "Dockfile.yaml"),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
        )
        processes.append(ours)
        base = f"http://127.0.0.1:{port}"
        wait_up(base, ours, "/ready")
        targets = [
            Target("dockrion /invoke/stream", base, "own"),
            Target("dockrion /lg (LangGraph API)", f"{base}/lg", "lg"),
        ]
        if args.langgraph_venv is not None:
            lg_port = harness.free_port()
            env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
            server = subprocess.Popen(
                [
                    str(args.langgraph_venv / "bin" / "langgraph"),
                    "dev",
                    "--no-browser",
                    "--no-reload",
                    "--port",
                    str(lg_port),
                ],
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            processes.append(server)
            lg_base = f"http://127.0.0.1:{lg_port}"
            wait_up(lg_base, server, "/ok")
            targets.append(Target("LangGraph Server (langgraph dev)", lg_base, "lg"))
        medians = asyncio.run(measure(targets, args))
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    own = medians[targets[0].name]
    print(
        f"\n{args.rounds} rounds, {args.tokens} tokens per stream, {args.requests} runs "
        "of 1 token (20 at a time), medians\n"
    )
    print("| target | tokens/s | x own stream | requests/s | x own /invoke |")
    print("|---|---|---|---|---|")
    for target in targets:
        figures = medians[target.name]
        print(
            f"| {target.name} | {figures['tok']:,.0f} | {figures['tok'] / own['tok']:.2f} | "
            f"{figures['req']:,.0f} | {figures['req'] / own['req']:.2f} |"
        )


if __name__ == "__main__":
    main()
