"""Build the three distributions and smoke-test them as a user receives them.

    python3 tools/release_smoke.py [--dist DIR] [--keep] [--floors]

Builds a wheel and an sdist of each package (`hatch build`) unless `--dist` names a
directory that already holds them, checks their metadata, installs the three wheels from
those files alone into a fresh virtual environment (dependencies come from the package
index, no dev extras), then, in that environment only:

- `dockrion-schema validate` on the quickstart Dockfile, and on the shortest Redis Dockfile
  with no environment (valid with a warning; refused with `--require-env`, and by
  `dockrion-runtime serve`, naming REDIS_URL);
- `import dockrion_events` does not import the server's dependencies (starlette), and
  `dockrion-schema` and `dockrion-events`, each installed alone in an environment of its
  own, pull none of them;
- `dockrion-runtime serve` the quickstart on a free loopback port, `POST /invoke` (from a
  page's origin, and once with a body the io_schema refuses: 400), stream `/invoke/stream`
  and check that the stream ends with the terminal `complete` event.

With `--floors`, the same wheels go into a second fresh environment with the LOWEST version
of every dependency the packages declare (each declared requirement named as a direct one,
resolved by `uv pip install --resolution lowest-direct`; the `redis` extra included), which
must be exactly the declared floors on the oldest supported Python. There the quickstart is
served again (on the Redis backend too, where `redis-server` is installed), and the tests of
the third-party internals the packages rely on (`packages/*/tests/test_internals.py`) run:
a floor that is not true fails here, not on a user's machine.

Everything happens in a temporary directory; nothing is written to the repository.
Exit status 0 when every step passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from email.message import Message
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"schema": "dockrion_schema", "events": "dockrion_events", "runtime": "dockrion_runtime"}
SHORTEST_REDIS = (
    'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\n'
    "expose: {}\nstreaming: {backend: redis}\n"
)
# Loopback only: never route the smoke requests through an HTTP proxy from the environment.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
START_TIMEOUT = 60.0
STREAM_TIMEOUT = 30.0
# The extras whose requirements the floors check installs too (package -> extras).
FLOOR_EXTRAS = {"dockrion_events": ("redis",), "dockrion_runtime": ("otel",)}
# `name[extras] specifiers; marker`, as wheel metadata writes a requirement
REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*(?P<spec>[^;]*)(?:;(?P<marker>.*))?$"
)


class SmokeError(Exception):
    """A step failed; the message says which and why."""


def step(title: str) -> None:
    print(f"-- {title}", flush=True)


def run(
    args: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    expect: int | None = 0,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if expect is not None and result.returncode != expect:
        raise SmokeError(
            f"{' '.join(map(str, args))} exited {result.returncode}, expected {expect}\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def build(dist: Path) -> None:
    hatch = shutil.which("hatch")
    if hatch is None:
        raise SmokeError("hatch is not installed: pip install 'hatch>=1.16'")
    for name in PACKAGES:
        run([hatch, "build", "-t", "wheel", "-t", "sdist", dist], cwd=ROOT / "packages" / name)


def built_files(dist: Path) -> dict[str, tuple[Path, Path]]:
    """Wheel and sdist of each package, by distribution name."""
    found: dict[str, tuple[Path, Path]] = {}
    for module in PACKAGES.values():
        wheels = sorted(dist.glob(f"{module}-*.whl"))
        sdists = sorted(dist.glob(f"{module}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            raise SmokeError(
                f"expected one wheel and one sdist of {module} in {dist}, "
                f"found {[p.name for p in wheels + sdists]}"
            )
        found[module] = (wheels[0], sdists[0])
    return found


def check_metadata(files: dict[str, tuple[Path, Path]]) -> str:
    """Same version everywhere, a readme, and sibling pins on exactly that version."""
    versions: dict[str, str] = {}
    for module, (wheel, _sdist) in files.items():
        with zipfile.ZipFile(wheel) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            metadata = Parser().parsestr(archive.read(name).decode())
            if module == "dockrion_schema" and not any(
                n.endswith("dockrion_schema/dockfile-v1.schema.json") for n in archive.namelist()
            ):
                raise SmokeError(f"{wheel.name} lacks the Dockfile JSON Schema")
            playground = {"index.html", "playground.js", "chat.js", "playground.css"}
            if module == "dockrion_runtime" and not all(
                f"dockrion_runtime/playground/{n}" in archive.namelist() for n in playground
            ):
                raise SmokeError(f"{wheel.name} lacks the playground's static files")
        for field in ("Name", "Version", "Summary", "License-Expression", "Requires-Python"):
            if not metadata.get(field):
                raise SmokeError(f"{wheel.name}: metadata field {field} is missing")
        if "text/markdown" not in (metadata.get("Description-Content-Type") or ""):
            raise SmokeError(f"{wheel.name}: no Markdown readme in the metadata")
        versions[module] = metadata["Version"]
        for requirement in metadata.get_all("Requires-Dist") or []:
            if requirement.startswith("dockrion-") and f"=={metadata['Version']}" not in (
                requirement
            ):
                raise SmokeError(f"{wheel.name}: {requirement!r} is not pinned to this release")
    if len(set(versions.values())) != 1:
        raise SmokeError(f"the packages disagree on the version: {versions}")
    return next(iter(versions.values()))


def install(venv: Path, files: dict[str, tuple[Path, Path]]) -> Path:
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    wheels = [wheel for wheel, _ in files.values()]
    # The wheel files are named, so the three packages cannot come from the index.
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wheels])
    for module, (wheel, _) in files.items():
        # pip records where each distribution came from: it must be the built file.
        code = (
            "import importlib.metadata as m, json, sys; "
            f"d = m.distribution({module.replace('_', '-')!r}); "
            "print(json.loads(d.read_text('direct_url.json') or '{}').get('url', ''))"
        )
        origin = run([python, "-c", code]).stdout.strip()
        if origin != wheel.resolve().as_uri():
            raise SmokeError(f"{module} was installed from {origin or 'the index'}, not {wheel}")
    return python


def clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("REDIS_URL", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def validate(venv: Path, work: Path, env: dict[str, str]) -> None:
    cli = venv / "bin" / "dockrion-schema"
    run([cli, "validate", work / "quickstart" / "Dockfile.yaml"], env=env)
    redis = work / "redis" / "Dockfile.yaml"
    redis.parent.mkdir()
    redis.write_text(SHORTEST_REDIS)
    result = run([cli, "validate", "--format", "json", redis], env=env)
    [entry] = json.loads(result.stdout)["files"]
    if [w["path"] for w in entry["warnings"]] != ["streaming.redis.url"]:
        raise SmokeError(f"expected a REDIS_URL warning, got {entry}")
    run([cli, "validate", "--require-env", redis], env=env, expect=1)
    # Serving needs what validation only warned about: it refuses, naming the variable.
    serve: list[str | Path] = [venv / "bin" / "dockrion-runtime", "serve", redis, "--port", "1"]
    refused = run(serve, env=env, expect=1)
    if "'REDIS_URL' is not set" not in refused.stderr:
        raise SmokeError(f"serve did not name REDIS_URL:\n{refused.stderr}")


def events_stay_light(python: Path, env: dict[str, str], work: Path) -> None:
    code = "import dockrion_events, sys; assert 'starlette' not in sys.modules"
    run([python, "-c", code], env=env, cwd=work)


def installed_names(python: Path) -> set[str]:
    code = "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'])"
    listed = run([python, "-c", code]).stdout.split()
    return {re.sub(r"[-_.]+", "-", name).lower() for name in listed}


def each_alone(work: Path, files: dict[str, tuple[Path, Path]]) -> None:
    """dockrion-schema and dockrion-events each installed alone pull none of the server's
    dependencies: the schema validates a Dockfile, the events package imports."""
    server = {"starlette", "uvicorn", "httptools", "websockets", "dockrion-runtime"}
    for module, check in (
        ("dockrion_schema", ["dockrion-schema", "validate", "Dockfile.yaml"]),
        ("dockrion_events", ["python", "-c", "import dockrion_events"]),
    ):
        venv = work / f"alone-{module}"
        run([sys.executable, "-m", "venv", venv])
        python = venv / "bin" / "python"
        wheel = files[module][0]
        run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel])
        pulled = installed_names(python) & server
        if pulled:
            raise SmokeError(f"{wheel.name} alone pulls the server's {sorted(pulled)}")
        program, *args = check
        run([venv / "bin" / program, *args], cwd=work / "quickstart", env=clean_env(venv))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            raise SmokeError(f"serve exited {server.returncode} before answering:\n{output}")
        try:
            with HTTP.open(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise SmokeError(f"serve did not answer {url}/health within {START_TIMEOUT:.0f} s")


def invoke_once(url: str) -> dict[str, object]:
    """One `POST /invoke` from a browser page's origin (CORS applies): the agent's output,
    which echoes the query; and one with a body the io_schema refuses: a 400 naming the
    field, not a 500."""
    query = "hello from the release smoke test"
    headers = {"Content-Type": "application/json", "Origin": "http://page.example"}
    request = urllib.request.Request(
        f"{url}/invoke",
        data=json.dumps({"query": query, "delay": 0}).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with HTTP.open(request, timeout=STREAM_TIMEOUT) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise SmokeError(f"/invoke answered {error.code}: {error.read()!r}") from None
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, dict) or output.get("answer") != query:
        raise SmokeError(f"/invoke did not answer with the agent's output: {body}")
    refused = urllib.request.Request(
        f"{url}/invoke", data=b'{"delay": 0}', headers=headers, method="POST"
    )
    try:
        HTTP.open(refused, timeout=STREAM_TIMEOUT).close()
    except urllib.error.HTTPError as error:
        problem = json.loads(error.read())
        if error.code == 400 and problem.get("code") == "VALIDATION_ERROR":
            return output
        raise SmokeError(f"/invoke without 'query' answered {error.code}: {problem}") from None
    raise SmokeError("/invoke without 'query' was accepted")


def stream_to_completion(url: str) -> list[str]:
    """The event types of one streamed invocation, in order."""
    request = urllib.request.Request(
        f"{url}/invoke/stream",
        data=json.dumps({"query": "hello from the release smoke test", "delay": 0}).encode(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        method="POST",
    )
    types: list[str] = []
    with HTTP.open(request, timeout=STREAM_TIMEOUT) as response:
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("text/event-stream"):
            raise SmokeError(f"/invoke/stream answered {content_type!r}, not an event stream")
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event:"):
                types.append(line.removeprefix("event:").strip())
    return types


def serve_and_stream(
    venv: Path, work: Path, env: dict[str, str], dockfile: str = "Dockfile.yaml"
) -> list[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(venv / "bin" / "dockrion-runtime"),
            "serve",
            dockfile,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-format",
            "text",
            "--log-level",
            "warning",
        ],
        cwd=work / "quickstart",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_up(url, server)
        invoke_once(url)
        types = stream_to_completion(url)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if not types or types[-1] != "complete":
        raise SmokeError(f"the stream did not end with 'complete': {types}")
    return types


def uv_command() -> list[str]:
    """uv, which hatch installs beside itself (`python3 -m uv`) when it is not on PATH."""
    found = shutil.which("uv")
    if found is not None:
        return [found]
    probe = run([sys.executable, "-m", "uv", "--version"], expect=None)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    raise SmokeError("uv is not installed: pip install uv (hatch installs it too)")


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def oldest_python(files: dict[str, tuple[Path, Path]]) -> tuple[int, int]:
    """The oldest Python every package supports (`Requires-Python: >=3.11`): there each
    declared floor must install as it is written."""
    oldest = (0, 0)
    for wheel, _sdist in files.values():
        declared = re.search(r">=\s*(\d+)\.(\d+)", wheel_metadata(wheel)["Requires-Python"] or "")
        if declared is None:
            raise SmokeError(f"{wheel.name} declares no oldest Python (Requires-Python: >=)")
        oldest = max(oldest, (int(declared.group(1)), int(declared.group(2))))
    return oldest


def declared_requirements(files: dict[str, tuple[Path, Path]]) -> list[str]:
    """Every third-party requirement the wheels declare (and those of `FLOOR_EXTRAS`), as
    written, without the extra's marker."""
    found: list[str] = []
    for module, (wheel, _sdist) in files.items():
        metadata = wheel_metadata(wheel)
        for requirement in metadata.get_all("Requires-Dist") or []:
            if requirement.startswith("dockrion-"):
                continue
            head, _, marker = requirement.partition(";")
            extra = re.fullmatch(r"""\s*extra\s*==\s*["']([\w-]+)["']\s*""", marker)
            if extra is not None:
                if extra.group(1) not in FLOOR_EXTRAS.get(module, ()):
                    continue
                requirement = head.strip()
            if requirement not in found:
                found.append(requirement)
    return found


def _release(version: str) -> tuple[int, ...]:
    """`"6.0"` and `"6"` alike: the numeric release, trailing zeros dropped."""
    parts = [int(part) for part in re.findall(r"\d+", version.split("+")[0])]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def install_floors(venv: Path, files: dict[str, tuple[Path, Path]]) -> tuple[Path, list[str]]:
    """The wheels with the lowest version of each declared requirement, in a fresh venv;
    the lines that say which floor installed as what."""
    uv = uv_command()
    run([*uv, "venv", "--quiet", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    requirements = declared_requirements(files)
    wheels = [wheel for wheel, _ in files.values()]
    # Each requirement named on the command line is a direct one: uv takes its lowest
    # version (transitive ones stay the newest). Only wheels: an sdist of an old release
    # may not build on this Python, and what cannot be installed is no floor.
    lowest = ["--resolution", "lowest-direct", "--only-binary", ":all:"]
    run([*uv, "pip", "install", "--quiet", "--python", python, *lowest, *requirements, *wheels])
    frozen = run([*uv, "pip", "freeze", "--python", python]).stdout
    installed = {}
    for line in frozen.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    report: list[str] = []
    untrue: list[str] = []
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        floor = re.search(r">=\s*([\w.]+)", match.group("spec")) if match else None
        if match is None or floor is None:
            raise SmokeError(f"{requirement!r} declares no floor (>=)")
        name = re.sub(r"[-_.]+", "-", match.group("name")).lower()
        got = installed.get(name)
        if got is None:
            if match.group("marker"):
                continue  # not for this platform
            raise SmokeError(f"{requirement!r} was not installed")
        report.append(f"{name} {floor.group(1)} -> {got}")
        if _release(got) != _release(floor.group(1)):
            untrue.append(f"{name}: declared >={floor.group(1)}, lowest installable {got}")
    if untrue and sys.version_info[:2] == oldest_python(files):
        raise SmokeError("floors that do not install as declared:\n  " + "\n  ".join(untrue))
    for line in untrue:  # a newer Python: an old release may have no wheel for it
        print(f"   {line} (no wheel of the floor for this Python)")
    return python, report


def run_internals_tests(python: Path, env: dict[str, str]) -> None:
    """The internals tests of every package, on the floors."""
    uv = uv_command()
    run([*uv, "pip", "install", "--quiet", "--python", python, "pytest", "pytest-timeout"])
    tests = sorted(str(path) for path in ROOT.glob("packages/*/tests/test_internals.py"))
    if not tests:
        raise SmokeError("no packages/*/tests/test_internals.py to run")
    result = run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest", *tests],
        cwd=ROOT,
        env=env,
        expect=None,
    )
    if result.returncode != 0:
        raise SmokeError(f"the internals tests failed on the floors:\n{result.stdout}")
    print(f"   {result.stdout.strip().splitlines()[-1]}")


def serve_on_redis(venv: Path, work: Path, env: dict[str, str]) -> list[str] | None:
    """The quickstart on the Redis backend, against a throwaway redis-server (None when
    redis-server is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            raise SmokeError("redis-server is not installed; .ci/run must install it")
        return None
    port = free_port()
    data = work / "redis-data"
    data.mkdir()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dockfile = work / "quickstart" / "Dockfile.redis.yaml"
        text = (work / "quickstart" / "Dockfile.yaml").read_text()
        if "backend: memory" not in text:
            raise SmokeError("the quickstart Dockfile no longer says 'backend: memory'")
        dockfile.write_text(text.replace("backend: memory", "backend: redis"))
        return serve_and_stream(
            venv, work, {**env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}, dockfile.name
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def smoke_floors(files: dict[str, tuple[Path, Path]], work: Path) -> None:
    venv = work / "floors"
    step("install the wheels with the lowest version of every declared dependency")
    python, report = install_floors(venv, files)
    print("   " + ", ".join(report))
    env = clean_env(venv)
    step("on the floors: dockrion-runtime serve the quickstart, /invoke and /invoke/stream")
    types = serve_and_stream(venv, work, env)
    print(f"   {len(types)} events, last {types[-1]!r}")
    step("on the floors: the same on the Redis backend")
    types_on_redis = serve_on_redis(venv, work, env)
    if types_on_redis is None:
        print("   skipped: redis-server is not installed")
    elif types_on_redis[-1] != "complete":
        raise SmokeError(f"the stream on Redis did not end with 'complete': {types_on_redis}")
    step("on the floors: the third-party internals the packages rely on")
    run_internals_tests(python, env)


def smoke(dist: Path | None, work: Path, floors: bool = False) -> None:
    started = time.monotonic()
    if dist is None:
        dist = work / "dist"
        step(f"build wheels and sdists into {dist}")
        build(dist)
    files = built_files(dist)
    version = check_metadata(files)
    step(f"metadata of {len(files) * 2} files agrees on version {version}")
    venv = work / "venv"
    step("install the three wheels into a fresh virtual environment")
    python = install(venv, files)
    env = clean_env(venv)
    shutil.copytree(
        ROOT / "examples" / "quickstart",
        work / "quickstart",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    step("dockrion-schema validate")
    validate(venv, work, env)
    step("import dockrion_events without the server's dependencies")
    events_stay_light(python, env, work)
    step("dockrion-schema and dockrion-events each alone, without the server's dependencies")
    each_alone(work, files)
    step("dockrion-runtime serve the quickstart: POST /invoke, stream /invoke/stream")
    types = serve_and_stream(venv, work, env)
    print(f"   {len(types)} events, last {types[-1]!r}")
    if floors:
        smoke_floors(files, work)
    print(f"release smoke test passed in {time.monotonic() - started:.0f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, help="test these built files instead of building")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--floors",
        action="store_true",
        help="also serve on the lowest version of every declared dependency (needs uv)",
    )
    args = parser.parse_args(argv)
    print("== release smoke test (built wheels in a fresh virtualenv)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="dockrion-smoke-"))
    try:
        smoke(args.dist.resolve() if args.dist else None, work, args.floors)
    except (SmokeError, subprocess.TimeoutExpired, OSError) as error:
        print(f"release smoke test FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
