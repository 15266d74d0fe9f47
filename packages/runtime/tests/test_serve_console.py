"""What `dockrion-runtime serve` prints for the person who started it: a "Try it" line that
works when pasted into a shell (every example, with and without an API key), a Dockfile's
warnings once each without a Python source line, a warning when anyone on the network
could call an agent with no auth, and a quiet Ctrl+C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import harness
import pytest

from .conftest import wait_ready

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/Dockfile.yaml"))
KEY = "sk-try-it-0123456789"
SERVE = [sys.executable, "-m", "dockrion_runtime", "serve"]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    folder: Path

    @property
    def stdout(self) -> str:
        return (self.folder / "serve.out").read_text()

    @property
    def stderr(self) -> str:
        return (self.folder / "serve.err").read_text()

    def try_it(self) -> str:
        lines = self.stdout.splitlines()
        return lines[lines.index("Try it:") + 1].strip()

    def interrupt(self) -> int:
        """Ctrl+C, as a terminal sends it; the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(60)


StartServe = Callable[..., Served]


@pytest.fixture
def serve_cli(tmp_path: Path) -> Iterator[StartServe]:
    started: list[Served] = []

    def start(dockfile: Path, *args: str, environ: dict[str, str] | None = None) -> Served:
        port = harness.free_port()
        folder = dockfile.parent
        with (folder / "serve.out").open("wb") as out, (folder / "serve.err").open("wb") as err:
            process = subprocess.Popen(
                [*SERVE, str(dockfile), "--port", str(port), "--log-level", "warning", *args],
                stdout=out,
                stderr=err,
                env={**os.environ, **(environ or {})},
            )
        served = Served(process, "", folder)
        started.append(served)
        served.url = wait_ready(process, port, f"serve {dockfile}")
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait(30)


def example_copy(tmp_path: Path, example: str, extra: str = "") -> Path:
    folder = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, folder)
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(dockfile.read_text() + extra)
    return dockfile


def run_in_a_shell(line: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environ},
    )


@pytest.mark.parametrize("auth", [False, True], ids=["open", "api-key"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_the_try_it_line_works_pasted_into_a_shell(
    serve_cli: StartServe, tmp_path: Path, example: str, auth: bool
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    if example.startswith(("langgraph", "langchain")):
        pytest.importorskip("langgraph" if example.startswith("langgraph") else "langchain_core")
    extra = "auth:\n  mode: api_key\n" if auth else ""
    environ = {"DOCKRION_API_KEY": KEY} if auth else {}
    served = serve_cli(example_copy(tmp_path, example, extra), environ=environ)
    line = served.try_it()
    assert line.startswith("curl ")
    assert KEY not in line  # the key stays in the environment
    port = served.url.rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/" in line
    result = run_in_a_shell(line, environ)
    assert result.returncode == 0, result.stderr
    assert "event: complete" in result.stdout, result.stdout
    assert "event: error" not in result.stdout, result.stdout
    if auth:  # and without the key, the same line is refused: the header did the work
        refused = run_in_a_shell(line, {"DOCKRION_API_KEY": ""})
        assert '"code":"AUTH_ERROR"' in refused.stdout


@pytest.mark.parametrize("auth", [False, True], ids=["open", "api-key"])
@pytest.mark.parametrize(
    "transports",
    ["rest: true\n  streaming: none", "rest: false\n  streaming: websocket"],
    ids=["invoke-only", "websocket-only"],
)
def test_the_try_it_line_works_for_every_transport(
    serve_cli: StartServe, tmp_path: Path, transports: str, auth: bool
) -> None:
    """Without SSE the line calls what is served: `POST /invoke`, or `WS /invoke/ws` with
    the `websockets` client the runtime installs."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    dockfile = example_copy(tmp_path, "quickstart", "auth:\n  mode: api_key\n" if auth else "")
    text = dockfile.read_text()
    assert "\nexpose:\n" in text
    dockfile.write_text(text.replace("\nexpose:\n", f"\nexpose:\n  {transports}\n", 1))
    environ = {"DOCKRION_API_KEY": KEY} if auth else {}
    served = serve_cli(dockfile, environ=environ)
    line = served.try_it()
    assert KEY not in line
    # `python` as in the virtual environment the runtime is installed in
    shell = {**environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = run_in_a_shell(line, shell)
    assert result.returncode == 0, result.stderr
    if "websocket" in transports:
        assert line.startswith("python -c ") and "/invoke/ws " in line
        assert '"type": "complete"' in result.stdout or '"type":"complete"' in result.stdout
    else:
        assert line.startswith("curl -X POST ") and "/invoke " in line
        assert '"success":true' in result.stdout.replace(" ", ""), result.stdout
    if auth:  # without the key the same line is refused: the header did the work
        refused = run_in_a_shell(line, {**shell, "DOCKRION_API_KEY": ""})
        expected = "HTTP 401" if "websocket" in transports else '"code":"AUTH_ERROR"'
        assert expected in refused.stdout + refused.stderr


def test_dockfile_warnings_print_once_without_a_source_line(
    serve_cli: StartServe, tmp_path: Path
) -> None:
    dockfile = example_copy(tmp_path, "quickstart", "streming: {}\n")
    served = serve_cli(dockfile)
    served.interrupt()
    typo = [line for line in served.stderr.splitlines() if "streming" in line]
    assert typo == [
        f"warning: {dockfile}:{len(dockfile.read_text().splitlines())}:1 streming: unknown "
        "field 'streming' (kept, but nothing reads it); did you mean 'streaming'?"
    ]
    assert "DockfileWarning" not in served.stderr
    assert "warnings.warn" not in served.stderr


def test_a_quiet_ctrl_c(serve_cli: StartServe, tmp_path: Path) -> None:
    served = serve_cli(example_copy(tmp_path, "quickstart"), "--log-level", "info")
    assert served.interrupt() == 130
    assert "Traceback" not in served.stderr
    assert "KeyboardInterrupt" not in served.stderr
    assert "Application shutdown complete" in served.stderr  # it did shut down cleanly
    assert "warning:" not in served.stderr  # 127.0.0.1: nothing to warn about


def test_listening_on_every_interface_without_auth_is_warned_about(
    serve_cli: StartServe, tmp_path: Path
) -> None:
    exposed = serve_cli(example_copy(tmp_path, "quickstart"), "--host", "0.0.0.0")
    exposed.interrupt()
    assert (
        "warning: listening on 0.0.0.0 with no auth: anyone who can reach this machine can "
        "call the agent." in exposed.stderr
    )
    keyed = serve_cli(
        example_copy(tmp_path / "keyed", "quickstart", "auth:\n  mode: api_key\n"),
        "--host",
        "0.0.0.0",
        environ={"DOCKRION_API_KEY": KEY},
    )
    keyed.interrupt()
    assert "no auth" not in keyed.stderr


def test_the_try_it_line_of_a_graph_whose_io_schema_lists_no_properties(
    serve_cli: StartServe, tmp_path: Path
) -> None:
    # What a langgraph.json user writes first: the graph, and an io_schema that says little.
    pytest.importorskip("langgraph")
    dockfile = example_copy(tmp_path, "langgraph-react")
    dockfile.write_text(
        'version: "1.0"\n'
        "agent: {name: bare-graph, entrypoint: 'react:build', framework: langgraph}\n"
        "io_schema: {input: {type: object}}\n"
        "expose: {host: 127.0.0.1}\n"
    )
    served = serve_cli(dockfile)
    line = served.try_it()
    assert '"messages": [{"role": "user", "content": "hello from dockrion"}]' in line
    result = run_in_a_shell(line, {})
    assert "event: complete" in result.stdout and "event: error" not in result.stdout
