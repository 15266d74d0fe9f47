"""Usage per caller and day (tokens in and out, cost, runs), kept in the events backend so
every instance on one Redis shares it, and the daily budgets of `policies.budgets`
checked against it.

A run is refused (429 BUDGET_EXHAUSTED) when a budget of its caller is spent as it is
asked for; a run under way counts its own model calls as they end and is stopped (an error
event, code BUDGET_EXCEEDED, naming the budget) when they take the caller past a budget.
Each run adds what it used to the caller's day when it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dockrion_events import AuthContext, BackendError, EventBackend
from dockrion_events.backends.usage_ledger import UsageLedger
from dockrion_schema import Budget

from ..auth.base import Principal, Refused
from ..auth.concurrency import CallerSlots, Kind
from ..errors import RuntimeHTTPError
from .meter import ModelUsage

__all__ = ["ANONYMOUS", "BudgetExceededError", "BudgetedSlots", "Spending", "UsageBook", "today"]

log = logging.getLogger("dockrion.runtime")

# The owner of the usage of runs without an authenticated caller.
ANONYMOUS = "anonymous"


def today() -> str:
    """The UTC day usage is counted under, `YYYY-MM-DD`."""
    return datetime.now(UTC).date().isoformat()


def _seconds_to_next_day() -> int:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, int((midnight - now).total_seconds()) + 1)


def owner_of(caller: AuthContext) -> str:
    return caller.principal_id or ANONYMOUS


class BudgetExceededError(RuntimeHTTPError):
    """A run's model calls took its caller past a budget: the run stops."""

    def __init__(self, budget: Budget, what: str, limit: float, used: float) -> None:
        super().__init__(
            f"Budget '{budget.name}' exceeded: this caller used {used:g} {what} today (the "
            f"limit is {limit:g} a day); the run was stopped",
            "BUDGET_EXCEEDED",
            {"budget": budget.name, "limit": limit, "used": used, "unit": what},
        )


@dataclass(slots=True)
class Spending:
    """A caller's budgets and what it had used today when its run started."""

    budgets: list[Budget]
    tokens: float
    cost: float

    def exhausted(self) -> tuple[Budget, str, float, float] | None:
        """The first budget already spent: (budget, unit, limit, used), or None."""
        return self._over(0, 0.0, strictly=False)

    def check(self, run: ModelUsage) -> None:
        """Raise when this run's usage so far takes the caller past a budget."""
        over = self._over(run.tokens, run.cost, strictly=True)
        if over is not None:
            raise BudgetExceededError(*over)

    def _over(
        self, tokens: int, cost: float, *, strictly: bool
    ) -> tuple[Budget, str, float, float] | None:
        for budget in self.budgets:
            for unit, limit, used in (
                ("tokens", budget.tokens_per_day, self.tokens + tokens),
                ("cost", budget.cost_per_day, self.cost + cost),
            ):
                if limit is not None and (used > limit if strictly else used >= limit):
                    return budget, unit, float(limit), round(used, 6)
        return None


class UsageBook:
    """Usage of every caller of one app, in the events backend (or, without one, in this
    process), and the Dockfile's budgets."""

    def __init__(self, budgets: list[Budget], backend: Callable[[], EventBackend | None]) -> None:
        self.budgets = budgets
        self._backend = backend
        self._local = UsageLedger()  # for an app without background runs (no backend)

    def guard(self, slots: CallerSlots) -> CallerSlots:
        """The caller slots, taken only within the budgets (as they are without budgets)."""
        return BudgetedSlots(slots, self) if self.budgets else slots

    def applicable(self, caller: AuthContext) -> list[Budget]:
        roles = caller.roles or ("default",)
        return [b for b in self.budgets if b.role is None or b.role in roles]

    async def read(self, day: str, owner: str | None = None) -> dict[str, dict[str, float]]:
        backend = self._backend()
        if backend is None:
            return self._local.read(day, owner)
        return await backend.read_usage(day, owner)

    async def spending(self, caller: AuthContext) -> Spending | None:
        """The caller's budgets and today's usage (None: no budget applies)."""
        budgets = self.applicable(caller)
        if not budgets:
            return None
        owner = owner_of(caller)
        used = (await self.read(today(), owner)).get(owner, {})
        return Spending(
            budgets,
            used.get("input_tokens", 0.0) + used.get("output_tokens", 0.0),
            used.get("cost", 0.0),
        )

    async def refuse_if_spent(self, caller: AuthContext) -> None:
        """429 BUDGET_EXHAUSTED when a budget of the caller is spent for today."""
        spending = await self.spending(caller)
        over = spending.exhausted() if spending is not None else None
        if over is None:
            return
        budget, unit, limit, used = over
        raise Refused(
            f"Budget '{budget.name}' is spent for today: this caller used {used:g} {unit} "
            f"(the limit is {limit:g} a day); it renews at 00:00 UTC",
            "BUDGET_EXHAUSTED",
            "BUDGET_EXHAUSTED",
            {"budget": budget.name, "limit": limit, "used": used, "unit": unit},
            headers={"Retry-After": str(_seconds_to_next_day())},
        )

    async def record(self, caller: AuthContext | None, run: ModelUsage) -> None:
        """Add one run's usage to its caller's day."""
        owner = owner_of(caller) if caller is not None else ANONYMOUS
        usage: dict[str, float] = {
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cost": run.cost,
            "runs": 1,
        }
        backend = self._backend()
        if backend is None:
            self._local.add(owner, today(), usage)
            return
        try:
            await backend.add_usage(owner, today(), usage)
        except BackendError as exc:  # the run's answer stands; its usage is lost
            log.error("usage of a run of %s not recorded: %s", owner, exc)


class BudgetedSlots(CallerSlots):
    """The caller's run slots, taken only while its budgets are not spent."""

    def __init__(self, inner: CallerSlots, book: UsageBook) -> None:
        self.inner = inner
        self.book = book

    def bound(self, principal: Principal, kind: Kind) -> int | None:
        return self.inner.bound(principal, kind)

    async def take(self, principal: Principal, kind: Kind) -> Callable[[], None]:
        if kind == "runs":
            await self.book.refuse_if_spent(principal.auth_context)
        return await self.inner.take(principal, kind)

    async def acquire(self, kind: str, key: str, bound: int) -> Any:
        return await self.inner.acquire(kind, key, bound)

    async def close(self) -> None:
        await self.inner.close()
