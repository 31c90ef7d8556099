"""The CML Model Registry through API v2: register a run's model, read a version, move an alias.

The lab's calls: ``create_registered_model`` from an experiment run (``experiment_id``, ``run_id``,
``model_path``, ``model_name``), ``get_registered_model_version``, and a tag ``alias`` in
``update_registered_model_version`` (MLflow's aliases, such as ``champion``). A registration is not
idempotent: before a retry, the model's versions are searched for one of the same run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.refs import _field, _text
from monitoring.core.errors import PlatformRequestError

#: The version tag the registry reads as an alias (MLflow 3 replaced stages by aliases).
ALIAS_TAG = "alias"
#: The aliases cml-monitor moves: the version being shipped, and the one serving once verified.
CHALLENGER, CHAMPION = "challenger", "champion"


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, as API v2 answers it."""

    model_id: str
    version_id: str
    number: int
    run_id: str
    experiment_id: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @classmethod
    def of(cls, model_id: str, version: Any) -> RegisteredVersion:
        meta = _field(_field(version, "model_version_metadata"), "mlflow_metadata")
        pairs = [(_text(t, "key"), _text(t, "value")) for t in _field(version, "tags") or []]
        return cls(
            model_id=_text(version, "model_id") or model_id,
            version_id=_text(version, "model_version_id"),
            number=int(_field(version, "number") or 0),
            run_id=_text(meta, "run_id"),
            experiment_id=_text(meta, "experiment_id"),
            tags={k: v for k, v in pairs if k != ALIAS_TAG},
            aliases=tuple(v for k, v in pairs if k == ALIAS_TAG),
        )


class Registry:
    """The registry calls of one project's API (its client, retry policy and timeouts)."""

    def __init__(self, api: CmlApi):
        self.api = api

    def find_model_id(self, name: str) -> str | None:
        """The registered model named exactly ``name``, or None."""
        hits = [
            m
            for m in self.api.pages(
                f"list registered models named {name!r}",
                "list_registered_models",
                "models",
                search_filter=json.dumps({"name": name}),
            )
            if _text(m, "name") == name
        ]
        return _text(hits[0], "model_id") if hits else None

    def versions(self, model_id: str) -> list[RegisteredVersion]:
        """Every version of a registered model, oldest first."""
        items = self.api.pages(
            f"list versions of registered model {model_id}", "get_registered_model", "model_versions", model_id=model_id
        )
        return sorted((RegisteredVersion.of(model_id, v) for v in items), key=lambda v: v.number)

    def register(
        self, name: str, experiment_id: str, run_id: str, model_path: str, tags: dict[str, str]
    ) -> RegisteredVersion:
        """A new version of ``name`` from the run's model at ``model_path`` (at most one per run, even on retries).

        Raises:
            PlatformRequestError: the registry refused (no model at ``model_path``, no such run).
            TransientPlatformError: still failing after retries.
        """
        body = {
            "experiment_id": experiment_id,
            "run_id": run_id,
            "model_path": model_path,
            "model_name": name,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }

        def registered_anyway() -> RegisteredVersion | None:
            model_id = self.find_model_id(name)
            return next((v for v in self.versions(model_id) if v.run_id == run_id), None) if model_id else None

        answer = self.api._call(
            f"register run {run_id} as a version of {name!r}",
            "create_registered_model",
            before_retry=registered_anyway,
            body=body,
        )
        if isinstance(answer, RegisteredVersion):
            return answer
        versions = _field(answer, "model_versions") or []
        if not versions:
            raise PlatformRequestError(f"registering run {run_id} as {name!r} answered no version")
        return RegisteredVersion.of(_text(answer, "model_id"), versions[0])

    def version(self, model_id: str, version_id: str) -> RegisteredVersion:
        """One version (404 as ``PlatformRequestError`` when it was deleted)."""
        return RegisteredVersion.of(
            model_id,
            self.api._call(
                f"get registered model version {version_id}",
                "get_registered_model_version",
                model_id=model_id,
                version_id=version_id,
            ),
        )

    def set_alias(self, version: RegisteredVersion, alias: str) -> None:
        """Move ``alias`` (``champion``, ``challenger``) to ``version``."""
        self.api._call(
            f"set alias {alias!r} on {version.version_id}",
            "update_registered_model_version",
            body={"model_version_id": version.version_id, "tags": [{"key": ALIAS_TAG, "value": alias}]},
            model_id=version.model_id,
        )


__all__ = ["ALIAS_TAG", "CHALLENGER", "CHAMPION", "RegisteredVersion", "Registry"]
