"""Python clients for a Dockrion agent server (the `client` extra: `pip install
'dockrion-events[client]'`, which brings httpx).

>>> from dockrion_events.client import Client
>>> with Client("http://127.0.0.1:8080", api_key="...") as client:   # doctest: +SKIP
...     run = client.create_run({"query": "hello"})
...     for event in client.events(run.run_id):          # resumes by itself after a cut
...         print(event.sequence, event.type)

`AsyncClient` has the same methods, awaited. Events come back as the typed event models;
refusals raise `ClientError` subclasses carrying the HTTP status and the stable code.
"""

from ._async import AsyncClient
from ._core import ClientError, ConnectionLostError, ServerError
from ._sync import Client

__all__ = ["AsyncClient", "Client", "ClientError", "ConnectionLostError", "ServerError"]
