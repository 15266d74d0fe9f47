"""The Dockfile's `secrets:` section, checked once at start-up.

A required secret that is unset or empty (in the shell and in every env file) and has no
`default` stops `serve` with code MISSING_SECRET and the names; under `create_app` the app
starts but is not ready (`/ready` 503 names them) and never loads the agent. A missing
optional secret is a warning. A secret that only an env file or its `default` provides is
exported to the process environment, where agent code reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from dockrion_schema import SecretsConfig

__all__ = ["MissingSecretError", "SecretsCheck", "apply_secrets", "check_secrets"]

log = logging.getLogger("dockrion.runtime")


class MissingSecretError(Exception):
    """Required secrets are unset or empty; `missing` names them."""

    code = "MISSING_SECRET"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Missing required secrets: {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True, slots=True)
class SecretsCheck:
    missing: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    # name -> value for secrets the process environment does not hold yet
    to_export: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> MissingSecretError | None:
        return MissingSecretError(self.missing) if self.missing else None


def check_secrets(config: SecretsConfig | None, env: Mapping[str, str]) -> SecretsCheck:
    """What `secrets:` asks for against `env` (shell over env files); an empty value counts
    as unset, so the `default` applies to it."""
    if config is None:
        return SecretsCheck()
    check = SecretsCheck()
    for secrets, missing in ((config.required, check.missing), (config.optional, None)):
        for secret in secrets:
            value = env.get(secret.name) or secret.default
            if value:
                check.to_export[secret.name] = value
            elif missing is not None:
                missing.append(secret.name)
            else:
                check.missing_optional.append(secret.name)
    return check


def apply_secrets(check: SecretsCheck, target: MutableMapping[str, str]) -> None:
    """Log the missing optional secrets and export the resolved ones that `target` (the
    process environment) lacks; the shell's own non-empty values are never replaced."""
    for name in check.missing_optional:
        log.warning("optional secret %s is not set; features that need it may not work", name)
    for name, value in check.to_export.items():
        if not target.get(name):
            target[name] = value
