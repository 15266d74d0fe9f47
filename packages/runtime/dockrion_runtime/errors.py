"""Errors the runtime returns: each has an HTTP status and a stable machine `code`."""

from __future__ import annotations

from typing import Any

__all__ = ["RuntimeHTTPError", "error_body"]


def error_body(message: str, code: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": message, "code": code}
    if details is not None:
        body["details"] = details
    return body


class RuntimeHTTPError(Exception):
    """An error with the response it becomes: `{"success": false, "error", "code"}`."""

    def __init__(self, status: int, message: str, code: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = details

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.code, self.details)
