"""HTTP endpoints, one module per family: `service` (welcome, health, readiness, info,
schemas, metrics, API description), `invoke` (Pattern A: `POST /invoke`,
`POST /invoke/stream`) and `runs` (Pattern B: the `/runs` family). Handlers are plain
Starlette functions; `dockrion_runtime.routes` says which path serves which."""
