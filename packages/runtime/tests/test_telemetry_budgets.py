"""Usage per caller and daily budgets, over real HTTP with the tool-calling LangGraph
example (a scripted chat model reporting its token usage): `GET /usage`, a run refused
429 when its caller's budget is spent, a run stopped with an error event naming the
budget when its model calls cross it, and one budget shared by two instances on one
redis-server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app
from .test_langgraph_react import ALICE, BOB, KEYS, ask, example_project, wait_for

pytest.importorskip("langgraph")

# what the scripted model counts: "hello" is one call of 1 + 3 tokens; a weather question
# two calls, 3 + 5 then 11 + 8 tokens
HELLO_TOKENS, WEATHER_TOKENS = 4, 27


def budgeted(folder: Path, budgets: str, streaming: str = "") -> Path:
    dockfile = example_project(folder, streaming)
    roles = (
        "  roles:\n    - {name: admin, permissions: [invoke, view_metrics]}\n"
        "    - {name: default, permissions: [invoke]}\n"
    )
    text = dockfile.read_text().replace(
        "api_keys: {prefix: team}", "api_keys: {prefix: team, roles: {carol: [admin]}}"
    )
    dockfile.write_text(text + roles + "policies:\n  budgets:\n" + budgets)
    return dockfile


def events_of(url: str, text: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/invoke/stream", json=ask(text), headers=headers, timeout=60)


def last_event(response: httpx.Response) -> dict[str, Any]:
    events = list(parse_sse(response.content))
    assert events, response.text
    return dict(json.loads(events[-1].data))


CAROL = {"X-API-Key": "key-carol"}
ENVIRON = {**KEYS, "TEAM_API_KEY_CAROL": CAROL["X-API-Key"]}


def test_a_run_crossing_the_budget_stops_and_the_next_is_refused(tmp_path: Path) -> None:
    dockfile = budgeted(tmp_path, "    - {name: daily-tokens, tokens_per_day: 20}\n")
    with serve_app(create_app(dockfile, environ=ENVIRON)) as url:
        stopped = last_event(events_of(url, "weather in Paris?", ALICE))
        refused = events_of(url, "hello", ALICE)
        usage = httpx.get(f"{url}/usage", headers=ALICE).json()
        other = last_event(events_of(url, "hello", BOB))  # each caller has its own budget
        every = httpx.get(f"{url}/usage", params={"all": "true"}, headers=CAROL)
        not_allowed = httpx.get(f"{url}/usage", params={"all": "true"}, headers=ALICE)
    assert stopped["type"] == "error", stopped
    assert stopped["code"] == "BUDGET_EXCEEDED"
    assert stopped["details"]["budget"] == "daily-tokens"
    assert "daily-tokens" in stopped["error"]
    assert refused.status_code == 429, refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 86_400  # until 00:00 UTC
    body = refused.json()
    assert body["code"] == "BUDGET_EXHAUSTED"
    assert body["details"] == {
        "budget": "daily-tokens",
        "limit": 20.0,
        "used": WEATHER_TOKENS,
        "unit": "tokens",
    }
    assert usage["caller"] == "api_key:alice"
    assert usage["usage"]["total_tokens"] == WEATHER_TOKENS
    assert usage["usage"]["runs"] == 1  # the refused run never ran
    assert usage["budgets"] == [{"name": "daily-tokens", "tokens_per_day": 20, "tokens_left": 0}]
    assert other["type"] == "complete"
    assert every.status_code == 200, every.text
    callers = every.json()["callers"]
    assert callers["api_key:alice"]["total_tokens"] == WEATHER_TOKENS
    assert callers["api_key:bob"]["total_tokens"] == HELLO_TOKENS
    assert not_allowed.status_code == 403


def test_two_instances_on_one_redis_share_one_budget(tmp_path: Path, redis_server: Any) -> None:
    redis = f"  backend: redis\n  redis: {{url: '{redis_server.url}', key_prefix: bu-{tmp_path.name}}}\n"
    dockfile = budgeted(tmp_path, "    - {name: team-day, tokens_per_day: 10}\n", redis)
    with (
        serve_app(create_app(dockfile, environ=ENVIRON)) as a,
        serve_app(create_app(dockfile, environ=ENVIRON)) as b,
    ):
        assert last_event(events_of(a, "hello", ALICE))["type"] == "complete"  # 4
        run_id = httpx.post(f"{b}/runs", json=ask("hello"), headers=ALICE).json()["run_id"]
        assert wait_for(b, run_id)["status"] == "COMPLETED"  # 8
        stopped = last_event(events_of(a, "hello", ALICE))  # 12: crosses 10
        refused = httpx.post(f"{b}/runs", json=ask("hello"), headers=ALICE)
        usage_a = httpx.get(f"{a}/usage", headers=ALICE).json()["usage"]
        usage_b = httpx.get(f"{b}/usage", headers=ALICE).json()["usage"]
    assert (stopped["type"], stopped["code"]) == ("error", "BUDGET_EXCEEDED")
    assert stopped["details"]["budget"] == "team-day"
    assert refused.status_code == 429 and refused.json()["code"] == "BUDGET_EXHAUSTED"
    assert usage_a == usage_b
    assert usage_a["total_tokens"] == 3 * HELLO_TOKENS and usage_a["runs"] == 3


def test_usage_refuses_a_day_that_is_not_a_date(tmp_path: Path) -> None:
    dockfile = budgeted(tmp_path, "    - {name: d, cost_per_day: 1.5}\n")
    with serve_app(create_app(dockfile, environ=ENVIRON)) as url:
        bad = httpx.get(f"{url}/usage", params={"day": "yesterday"}, headers=ALICE)
        empty = httpx.get(f"{url}/usage", params={"day": "2020-01-01"}, headers=ALICE).json()
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_ERROR")
    assert empty["usage"]["runs"] == 0
    assert empty["budgets"] == [{"name": "d", "cost_per_day": 1.5, "cost_left": 1.5}]
