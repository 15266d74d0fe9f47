"""The ASGI extensions `dockrion-runtime serve` offers its app, named once for the server
that offers them (`serve/`) and the wire formats that use them (`wire/`).

`SEND_TEXTS`: a WebSocket app may send `{"type": SEND_TEXTS, "texts": [...]}`, several
text messages in one ASGI message, which the server writes in one write."""

__all__ = ["SEND_TEXTS"]

SEND_TEXTS = "dockrion.websocket.send_texts"
