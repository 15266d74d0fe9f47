"""The playground page: served by default, switchable off, public static files whose API
calls carry the user's key; and driven in headless Chromium through the DevTools protocol:
the form generated from io_schema.input, Run, tokens arriving, a network cut the page
resumes from by itself, Stop; and for a chat agent (examples/langgraph-react) the chat
view: a message, tool cards, an approval that resumes the run, a thread continued."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from dockrion_runtime import create_app

from .conftest import serve_app

Serve = Callable[..., str]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = "playground-test-key-0123456789"

AGENT = """
import time

def tokens(payload, context):
    count = int(payload.get("count", 5))
    for i in range(count):
        context.sync_emit_token(f"{i} ")
        time.sleep(0.05)
    return {"tokens": count, "style": payload.get("style"), "loud": payload.get("loud")}
"""

DOCKFILE = """\
version: "1.0"
agent: {{name: playground-agent, description: "Counts out loud", handler: "{module}:tokens"}}
io_schema:
  input:
    type: object
    properties:
      query: {{type: string, description: "What to say"}}
      count: {{type: integer, minimum: 1, maximum: 1000, default: 5}}
      style: {{type: string, enum: [plain, fancy]}}
      loud: {{type: boolean}}
    required: [query]
expose: {{host: 127.0.0.1}}
auth: {{mode: api_key}}
"""


# --- the page as files ------------------------------------------------------------------------


def test_the_page_and_its_files_are_public_and_the_api_is_not(serve: Serve) -> None:
    url = serve("echo", "auth: {mode: api_key}\n", environ={"DOCKRION_API_KEY": KEY})
    page = httpx.get(f"{url}/playground")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/playground/playground.js"' in page.text
    script = httpx.get(f"{url}/playground/playground.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "Last-Event-ID" in script.text
    assert '<script src="/playground/chat.js"' in page.text
    assert httpx.get(f"{url}/playground/chat.js").status_code == 200
    assert httpx.get(f"{url}/playground/playground.css").status_code == 200
    # nothing is fetched from elsewhere: no CDN, no remote font or script
    for name in ("", "/playground.js", "/chat.js", "/playground.css"):
        text = httpx.get(f"{url}/playground{name}").text
        assert "http://" not in text and "https://" not in text and '"//' not in text, name
    assert httpx.get(f"{url}/playground/nope.js").json()["code"] == "NOT_FOUND"
    assert httpx.get(f"{url}/playground/index.html").status_code == 404
    assert 'href="/playground"' in httpx.get(f"{url}/").text
    # what the page calls stays behind the key
    assert httpx.post(f"{url}/runs", json={"query": "x"}).status_code == 401


def test_the_playground_can_be_switched_off(serve: Serve) -> None:
    url = serve("echo", "expose: {host: 127.0.0.1, playground: false}\n")
    assert httpx.get(f"{url}/playground").status_code == 404
    assert httpx.get(f"{url}/playground/playground.js").status_code == 404
    assert "/playground" not in httpx.get(f"{url}/").text


# --- a proxy that cuts every connection on demand -------------------------------------------------


class CuttingProxy:
    """Forwards loopback TCP connections to `target_port`; `cut()` drops every open
    connection and refuses new ones for a while, like a network outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.down_until = 0.0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self, down_for: float) -> None:
        self.down_until = time.monotonic() + down_for
        with self.lock:
            dropped, self.open = self.open, []
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut(0)


# --- Chromium through the DevTools protocol -------------------------------------------------------


class Browser:
    """Headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (active.exists() and active.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = active.read_text().split("\n")[0]
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection = self.stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None)
        )
        self.next_id = 0
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=1100,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def eval(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                state = self.eval("document.getElementById('status').outerHTML")
                raise AssertionError(f"timed out waiting for {expression}; status: {state}")
            time.sleep(0.05)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stack.close()
        self.process.kill()
        self.process.wait(30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; .ci/run must install it")
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    opened = Browser(tmp_path / "profile")
    yield opened
    opened.close()


@pytest.fixture
def playground_server(tmp_path: Path) -> Iterator[str]:
    module = f"agent_playground_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(AGENT))
    dockfile = tmp_path / "Dockfile.yaml"
    dockfile.write_text(DOCKFILE.format(module=module))
    with serve_app(create_app(dockfile, environ={"DOCKRION_API_KEY": KEY})) as url:
        yield url
    sys.modules.pop(module, None)


STATE = "document.getElementById('status').dataset.state"
TOKENS = "document.getElementById('tokens').textContent"
TIMELINE = (
    "[...document.querySelectorAll('#events li:not(.note)')]"
    ".map(li => [Number(li.dataset.sequence), li.dataset.type])"
)


def set_value(browser: Browser, selector: str, value: str) -> None:
    browser.eval(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")


def token_numbers(browser: Browser) -> list[int]:
    return [int(word) for word in browser.eval(TOKENS).split()]


def test_the_page_runs_streams_resumes_after_a_cut_and_stops(
    playground_server: str, browser: Browser, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("DOCKRION_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    proxy = CuttingProxy(int(playground_server.rsplit(":", 1)[1]))
    try:
        browser.call("Page.navigate", url=f"http://127.0.0.1:{proxy.port}/playground")
        browser.wait("document.getElementById('form')?.dataset.ready === 'true'")

        # the form, from io_schema.input
        fields = browser.eval(
            "[...document.querySelectorAll('#form [name]')]"
            ".map(e => [e.name, e.dataset.kind, e.required])"
        )
        assert fields == [
            ["query", "string", True],
            ["count", "integer", False],
            ["style", "enum", False],
            ["loud", "boolean", False],
        ]
        assert browser.eval("document.getElementById('agent-name').textContent") == (
            "playground-agent"
        )

        # no key: the API refuses, and the page says so
        set_value(browser, "#form [name=query]", "hello")
        browser.eval("document.getElementById('run').click()")
        browser.wait(f"{STATE} === 'error'")
        assert "401" in browser.eval("document.getElementById('status').textContent")

        # with the key: a short run to the end
        set_value(browser, "#key", KEY)
        set_value(browser, "#form [name=style]", '"fancy"')
        browser.eval("document.querySelector('#form [name=loud]').checked = true")
        browser.eval("document.getElementById('run').click()")
        browser.wait(f"{STATE} === 'complete'")
        assert token_numbers(browser) == [0, 1, 2, 3, 4]
        result = json.loads(browser.eval("document.getElementById('result').textContent"))
        assert result == {"tokens": 5, "style": "fancy", "loud": True}
        timeline = browser.eval(TIMELINE)
        assert [seq for seq, _ in timeline] == list(range(7))
        assert timeline[0][1] == "started" and timeline[-1][1] == "complete"

        # a long run, cut mid-stream: the page reconnects with Last-Event-ID by itself
        set_value(browser, "#form [name=count]", "400")
        browser.eval("document.getElementById('run').click()")
        browser.wait(f"({TOKENS}).split(' ').length > 15")
        browser.screenshot(shots / "playground-streaming.png")
        before = len(token_numbers(browser))
        proxy.cut(down_for=1.5)
        browser.wait(f"{STATE} === 'reconnecting'", timeout=10)
        browser.screenshot(shots / "playground-reconnecting.png")
        browser.wait(
            f"{STATE} === 'streaming' && "
            "Number(document.getElementById('status').dataset.connections) >= 2",
            timeout=30,
        )
        browser.wait(f"({TOKENS}).split(' ').length > {before + 20}")

        # Stop cancels the run; its log ends with `cancelled`
        browser.eval("document.getElementById('stop').click()")
        browser.wait(f"{STATE} === 'cancelled'")
        numbers = token_numbers(browser)
        assert numbers == list(range(len(numbers))), "a token was lost or shown twice"
        assert before < len(numbers) < 400
        timeline = browser.eval(TIMELINE)
        assert [seq for seq, _ in timeline] == list(range(len(timeline)))
        assert timeline[-1][1] == "cancelled"
        assert any(
            "reconnecting" in text
            for text in browser.eval(
                "[...document.querySelectorAll('#events li.note')].map(li => li.textContent)"
            )
        )

        # both background runs, with their status
        browser.wait(
            "[...document.querySelectorAll('#runs td.status')].map(td => td.textContent)"
            ".join() === 'CANCELLED,COMPLETED'",
            timeout=15,
        )
        browser.screenshot(shots / "playground-stopped.png")
    finally:
        proxy.close()


# --- the chat view ---------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[str]:
    """examples/langgraph-react as it is, behind an API key."""
    pytest.importorskip("langgraph")
    project = tmp_path / "react-project"
    project.mkdir()
    (project / "react.py").write_text((EXAMPLE / "react.py").read_text())
    dockfile = project / "Dockfile.yaml"
    dockfile.write_text((EXAMPLE / "Dockfile.yaml").read_text() + "auth:\n  mode: api_key\n")
    with serve_app(create_app(dockfile, environ={"DOCKRION_API_KEY": KEY})) as url:
        yield url


# Each message of the conversation: who, the state of an answer, its parts in order (text,
# or a tool card as [name, state, arguments, result]).
CONVERSATION = """
[...document.querySelectorAll('#chat > .msg')].map(m => m.classList.contains('user')
  ? ['user', m.querySelector('.bubble').textContent]
  : ['agent', m.dataset.state, [...m.querySelector('.bubble').children]
      .filter(p => p.matches('.text, .tool'))
      .map(p => p.matches('.text') ? p.textContent : [
        p.querySelector('.name').textContent, p.dataset.state,
        JSON.parse(p.querySelector('.args').textContent),
        p.querySelector('.result')?.textContent ?? null])])
"""
ANSWERED = "document.querySelectorAll('#chat > .msg.agent[data-state=done]').length"


def say(browser: Browser, text: str) -> None:
    # the page runs one run at a time: the previous one has let go of the page first
    browser.wait("document.body.dataset.busy !== 'true'")
    set_value(browser, "#message", text)
    browser.eval("document.getElementById('send').click()")


def test_the_chat_view_streams_tool_cards_resumes_an_approval_and_keeps_the_thread(
    chat_server: str, browser: Browser, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("DOCKRION_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.call("Page.navigate", url=f"{chat_server}/playground")
    browser.wait("document.getElementById('form')?.dataset.ready === 'true'")

    # input with a `messages` array: the chat view instead of the form
    assert browser.eval("document.body.dataset.view") == "chat"
    assert browser.eval("document.getElementById('input-panel').offsetParent") is None
    assert browser.eval("document.getElementById('thread').value") == ""

    # a message: the answer streams around a tool card with the call and its result
    set_value(browser, "#key", KEY)
    say(browser, "what is the weather in Paris?")
    browser.wait(f"{ANSWERED} === 1")
    assert browser.eval(CONVERSATION) == [
        ["user", "what is the weather in Paris?"],
        [
            "agent",
            "done",
            [
                "Let me check the weather.",
                ["get_weather", "done", {"city": "Paris"}, "18°C and sunny"],
                "Here is what I found: 18°C and sunny.",
            ],
        ],
    ]
    # the graph keeps threads: the page continues the one the first run was given
    thread = browser.eval("document.getElementById('thread').value")
    assert thread.startswith("run-")
    assert browser.eval("new URL(location.href).searchParams.get('thread_id')") == thread
    browser.screenshot(shots / "playground-chat-tool.png")

    # a tool that asks for approval: the run stops at the interrupt, a panel asks
    say(browser, "email ana@example.com the agenda")
    browser.wait("!!document.querySelector('.approval button.approve:not(:disabled)')")
    conversation = browser.eval(CONVERSATION)
    assert conversation[-1] == [
        "agent",
        "waiting",
        [
            "I will draft that email.",
            [
                "send_email",
                "waiting",
                {"to": "ana@example.com", "body": "email ana@example.com the agenda"},
                None,
            ],
        ],
    ]
    panel = browser.eval(
        "(p => [p.querySelector('h3').textContent,"
        " [...p.querySelectorAll('dt, dd')].map(e => e.textContent)])"
        "(document.querySelector('.approval'))"
    )
    assert panel[0] == "Send it?"
    assert panel[1][:4] == ["action", "send_email", "to", "ana@example.com"]
    browser.screenshot(shots / "playground-chat-approval.png")

    # Approve resumes the run: the tool runs and the same answer goes on
    browser.eval("document.querySelector('.approval button.approve').click()")
    browser.wait(f"{ANSWERED} === 2")
    assert browser.eval(CONVERSATION)[-1] == [
        "agent",
        "done",
        [
            "I will draft that email.",
            [
                "send_email",
                "done",
                {"to": "ana@example.com", "body": "email ana@example.com the agenda"},
                "email to ana@example.com sent",
            ],
            "Here is what I found: email to ana@example.com sent.",
        ],
    ]
    assert browser.eval("document.querySelector('.approval').dataset.answer") == "approved"
    assert browser.eval("document.querySelectorAll('.approval button').length") == 0
    assert browser.eval("document.querySelector('.approval .answered').textContent") == "Approved"
    browser.screenshot(shots / "playground-chat-approved.png")

    # three runs (two messages and the resume), all on one thread, with the key
    runs = browser.eval(
        "[...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.runId)"
    )
    assert len(runs) == 3
    details = [
        httpx.get(f"{chat_server}/runs/{run}", headers={"X-API-Key": KEY}).json() for run in runs
    ]
    assert {run["metadata"]["thread_id"] for run in details} == {thread}
    assert all(run["status"] == "COMPLETED" for run in details)

    # a long event name wraps inside its column instead of running into the payload
    browser.eval(
        "showFrame({id: null, event: 'custom:x', data: JSON.stringify("
        "{type: 'custom:a_remarkably_long_event_name_for_the_timeline', n: 1})})"
    )
    overlaps = browser.eval(
        "[...document.querySelectorAll('#events li:not(.note)')].filter(li =>"
        " li.querySelector('.type').getBoundingClientRect().right >"
        " li.querySelector('code').getBoundingClientRect().left).length"
    )
    assert overlaps == 0

    # the thread continued from its link: earlier messages appear with the first answer
    browser.call("Page.navigate", url=f"{chat_server}/playground?thread_id={thread}")
    browser.wait("document.getElementById('form')?.dataset.ready === 'true'")
    assert browser.eval("document.getElementById('thread').value") == thread
    set_value(browser, "#key", KEY)
    say(browser, "thanks")
    browser.wait(f"{ANSWERED} >= 1 && !!document.querySelector('#chat .earlier')")
    earlier = browser.eval(
        "[...document.querySelectorAll('#chat .earlier .msg.user')].map(m => m.textContent)"
    )
    assert earlier == [
        "Youwhat is the weather in Paris?",
        "Youemail ana@example.com the agenda",
    ]
    earlier_tools = browser.eval(
        "[...document.querySelectorAll('#chat .earlier .tool')].map(t =>"
        " [t.querySelector('.name').textContent, t.dataset.state,"
        " t.querySelector('.result')?.textContent])"
    )
    assert earlier_tools == [
        ["get_weather", "done", "18°C and sunny"],
        ["send_email", "done", "email to ana@example.com sent"],
    ]
    assert browser.eval(CONVERSATION)[-2:] == [
        ["user", "thanks"],
        ["agent", "done", ["You said: thanks"]],
    ]
    browser.screenshot(shots / "playground-chat-thread.png")

    # Reject resumes the run too: the tool answers that it did not send
    say(browser, "email bob@example.com the minutes")
    browser.wait("!!document.querySelector('.approval button.reject')")
    browser.eval("document.querySelector('.approval button.reject').click()")
    browser.wait(f"{ANSWERED} === 2")
    assert browser.eval(CONVERSATION)[-1][2][1:] == [
        [
            "send_email",
            "done",
            {"to": "bob@example.com", "body": "email bob@example.com the minutes"},
            "email to bob@example.com not sent: not approved",
        ],
        "Here is what I found: email to bob@example.com not sent: not approved.",
    ]
    assert browser.eval("document.querySelector('.approval').dataset.answer") == "rejected"

    # New thread: an empty conversation, no thread in the field or the link
    browser.eval("document.getElementById('new-thread').click()")
    assert browser.eval("document.querySelectorAll('#chat .msg').length") == 0
    assert browser.eval("document.getElementById('thread').value") == ""
    assert browser.eval("location.search") == ""

    # the form stays one click away, for raw JSON
    browser.eval("document.getElementById('to-form').click()")
    assert browser.eval("document.getElementById('input-panel').offsetParent") is not None
    assert browser.eval("[...document.querySelectorAll('#form [name]')].map(e => e.name)") == [
        "messages"
    ]
