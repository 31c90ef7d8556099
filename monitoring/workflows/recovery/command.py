"""What a ``cml-monitor state`` command works with (``Recovery``), and how it reports (``say``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitoring.cmlclient import Platform
from monitoring.config.pipeline import PipelineConfig
from monitoring.state.store import StateStore
from monitoring.workflows.context import Context


@dataclass(frozen=True)
class Recovery:
    """A recovery command's config, project and platform, and the wiring of a ``Context`` around a
    store it opened itself (restored, or rebuilt), without the checks a job's opening makes.

    ``monitoring.app.wiring.recovery`` builds it; ``wire`` is ``wiring.build_context`` with the store given.
    """

    cfg: PipelineConfig
    project_root: Path
    platform: Platform
    wire: Callable[[StateStore], Context]

    def context(self, store: StateStore) -> Context:
        """The run's ``Context`` around ``store``."""
        return self.wire(store)


def say(label: str, text: str) -> None:
    """One line of a ``state`` command's report: a label column, then the text."""
    print(f"{label:<12}{text}")
