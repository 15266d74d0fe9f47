"""What a run's model calls used: tokens in and out per model, and their cost from the
Dockfile's price table (`observability.prices`, per million tokens)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dockrion_schema import ModelPrice

__all__ = ["UNKNOWN_MODEL", "ModelUsage", "Prices", "RunMeter"]

# The model label of usage a model did not name (an agent's own `usage` metadata).
UNKNOWN_MODEL = "unknown"


@dataclass(slots=True)
class ModelUsage:
    """Tokens and cost of one model, summed."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Prices:
    """The price table: the cost of a model call from its tokens (0 for unpriced models)."""

    def __init__(self, table: dict[str, ModelPrice]) -> None:
        self._table = {name: (price.input, price.output) for name, price in table.items()}

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        price = self._table.get(model)
        if price is None:
            return 0.0
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000

    def __bool__(self) -> bool:
        return bool(self._table)


@dataclass(slots=True)
class RunMeter:
    """One run's usage per model. Model calls may end on worker threads: adding is locked."""

    prices: Prices
    models: dict[str, ModelUsage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        """Count one model call; returns its cost."""
        name = model or UNKNOWN_MODEL
        cost = self.prices.cost(name, input_tokens, output_tokens)
        with self._lock:
            usage = self.models.get(name)
            if usage is None:
                usage = self.models[name] = ModelUsage()
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens
            usage.cost += cost
            usage.calls += 1
        return cost

    @property
    def total(self) -> ModelUsage:
        total = ModelUsage()
        with self._lock:
            for usage in self.models.values():
                total.input_tokens += usage.input_tokens
                total.output_tokens += usage.output_tokens
                total.cost += usage.cost
                total.calls += usage.calls
        return total
