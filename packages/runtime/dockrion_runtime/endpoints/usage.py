"""`GET /usage`: what the caller used on one day (UTC): tokens in and out, cost and runs,
with what is left of each of its budgets. `?all=true` gives every caller's usage to a
caller with the `view_metrics` permission when roles are configured (never otherwise:
one caller does not see another's usage)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..auth import principal_of
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from ..telemetry.usage import ANONYMOUS, today

__all__ = ["get_usage"]

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _shaped(fields: dict[str, float] | None) -> dict[str, Any]:
    fields = fields or {}
    input_tokens = int(fields.get("input_tokens", 0))
    output_tokens = int(fields.get("output_tokens", 0))
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost": round(fields.get("cost", 0.0), 9),
        "runs": int(fields.get("runs", 0)),
    }


async def get_usage(request: Request) -> Response:
    runtime = runtime_of(request)
    day = request.query_params.get("day", today())  # given empty: refused below
    if not _DAY.fullmatch(day):
        raise RuntimeHTTPError(
            f"Query parameter 'day' must be a date as YYYY-MM-DD, got {day[:40]!r}",
            "VALIDATION_ERROR",
        )
    every = request.query_params.getlist("all")
    if len(every) > 1 or (every and every[0] not in ("true", "false", "1", "0")):
        raise RuntimeHTTPError(
            "Query parameter 'all' must be given once, as true or false", "VALIDATION_ERROR"
        )
    principal = principal_of(request)
    book = runtime.usage
    if every and every[0] in ("true", "1"):
        if not (runtime.access.enforced and "view_metrics" in principal.permissions):
            raise RuntimeHTTPError(
                "Every caller's usage needs the view_metrics permission of a role in auth.roles",
                "FORBIDDEN",
            )
        callers = await book.read(day)
        return JSONResponse(
            {"day": day, "callers": {name: _shaped(f) for name, f in sorted(callers.items())}}
        )
    owner = principal.id or ANONYMOUS
    usage = _shaped((await book.read(day, owner)).get(owner))
    budgets = []
    for budget in book.applicable(principal.auth_context):
        entry: dict[str, Any] = {"name": budget.name}
        if budget.tokens_per_day is not None:
            entry["tokens_per_day"] = budget.tokens_per_day
            entry["tokens_left"] = max(0, budget.tokens_per_day - usage["total_tokens"])
        if budget.cost_per_day is not None:
            entry["cost_per_day"] = budget.cost_per_day
            entry["cost_left"] = round(max(0.0, budget.cost_per_day - usage["cost"]), 9)
        budgets.append(entry)
    return JSONResponse({"day": day, "caller": owner, "usage": usage, "budgets": budgets})
