"""HTTP and WebSocket endpoints, one module per family: `service` (welcome, health,
readiness, info, schemas, metrics, API description), `invoke` (Pattern A: `POST /invoke`,
`POST /invoke/stream`), `runs` (Pattern B: the `/runs` family), `sockets` (the WebSocket
views of a run), `ag_ui` (AG-UI front ends) and `playground` (the browser page). Handlers
are plain Starlette functions; `dockrion_runtime.routes` says which path serves which."""
