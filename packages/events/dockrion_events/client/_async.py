"""The asynchronous client (httpx): the same methods as `Client`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from ..models import BaseEvent, parse_event
from ..runs import Run
from ..sse import SseParser
from ._core import (
    RETRY_STATUSES,
    ResumeState,
    ServerError,
    auth_headers,
    run_of,
    server_error,
)

__all__ = ["AsyncClient"]


class AsyncClient:
    """A client for one agent server. `api_key` is sent in `api_key_header`; `token` as
    `Authorization: Bearer`. `give_up_after`: seconds a subscription keeps reconnecting
    without receiving a new event; `max_reconnect_delay` caps the wait between tries."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        api_key_header: str = "X-API-Key",
        timeout: float = 60.0,
        give_up_after: float = 60.0,
        max_reconnect_delay: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._owns_http = http is None
        self._headers = auth_headers(api_key, token, api_key_header)
        self.give_up_after = give_up_after
        self.max_reconnect_delay = max_reconnect_delay

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        response = await self._http.request(method, path, headers=self._headers, **options)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    # --- Pattern A ---------------------------------------------------------------------------

    async def invoke(self, payload: Any, *, thread_id: str | None = None) -> Any:
        """`POST /invoke`: the agent's output."""
        params = {"thread_id": thread_id} if thread_id else None
        return (await self._request("POST", "/invoke", json=payload, params=params))["output"]

    async def stream(
        self, payload: Any, *, thread_id: str | None = None
    ) -> AsyncIterator[BaseEvent]:
        """`POST /invoke/stream`: the run's events as they happen. This run lives only as
        long as the request, so a cut cannot be resumed (use `create_run` and `events`)."""
        params = {"thread_id": thread_id} if thread_id else None
        async with self._http.stream(
            "POST", "/invoke/stream", json=payload, params=params, headers=self._headers
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response)
            parser = SseParser()
            async for chunk in response.aiter_bytes():
                for message in parser.feed(chunk):
                    if message.id is not None:
                        yield parse_event(message.json())

    # --- Pattern B ---------------------------------------------------------------------------

    async def create_run(
        self, payload: Any, *, run_id: str | None = None, thread_id: str | None = None
    ) -> Run:
        """`POST /runs`: a background run, started."""
        params = {k: v for k, v in (("run_id", run_id), ("thread_id", thread_id)) if v}
        created = await self._request("POST", "/runs", json=payload, params=params)
        return await self.get_run(created["run_id"])

    async def get_run(self, run_id: str) -> Run:
        return run_of(await self._request("GET", f"/runs/{run_id}"))

    async def cancel(self, run_id: str, reason: str | None = None) -> str:
        """`DELETE /runs/{run_id}`: the run's status after the cancellation."""
        params = {"reason": reason} if reason else None
        return str((await self._request("DELETE", f"/runs/{run_id}", params=params))["status"])

    async def resume(self, run_id: str, value: Any) -> Run:
        """`POST /runs/{run_id}/resume`: the new run that continues an interrupted one."""
        created = await self._request("POST", f"/runs/{run_id}/resume", json=value)
        return await self.get_run(created["run_id"])

    async def events(self, run_id: str, *, from_sequence: int = 0) -> AsyncIterator[BaseEvent]:
        """Every event of the run from `from_sequence`, then live ones, until the terminal
        event: each exactly once, reconnecting with `Last-Event-ID` after any cut."""
        state = ResumeState(from_sequence, self.give_up_after, self.max_reconnect_delay)
        while not state.done():
            reason = "the stream ended before the run did"
            try:
                async with self._http.stream(
                    "GET",
                    f"/runs/{run_id}/events",
                    headers={**self._headers, **state.headers()},
                    params=state.params(),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        error = _error(response)
                        if response.status_code not in RETRY_STATUSES:
                            raise error
                        reason = str(error)
                    else:
                        state.connected()
                        async for chunk in response.aiter_bytes():
                            for event in state.feed(chunk):
                                yield event
                            if state.done():
                                return
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(state.next_delay(reason))


def _error(response: httpx.Response) -> ServerError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return server_error(response.status_code, body, response.text)
