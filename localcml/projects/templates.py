"""Project templates: what ``CreateProjectRequest.template`` names, and the starter files a project gets.

CML's built-in templates (``Python``, ``R``, ``PySpark``, ``Scala``) create a project holding
example code; the local workspace ships starter files of its own for each, in ``starters/``
(matched without regard to case, as ``local`` and ``git`` are). ``local`` and ``blank`` (or no
template) create an empty project; ``git`` clones ``git_url``. ``Churn Predictor``, which the
spec also names, is not shipped: it answers 501 naming it. Any other name is CML's 400.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from localcml.projects import exceptions

STARTERS = Path(__file__).with_name("starters")
#: Built-in templates with starter files: the name CML shows -> the folder of its files.
BUILT_IN = {"Python": "python", "R": "r", "PySpark": "pyspark", "Scala": "scala"}
#: Templates that create an empty project.
EMPTY = ("", "local", "blank")
GIT = "git"
#: Templates CML has that the local workspace does not ship.
NOT_SHIPPED = ("Churn Predictor",)


def known() -> str:
    """Every template name a request may give, for messages."""
    return ", ".join([*BUILT_IN, *NOT_SHIPPED, "local", "blank", GIT])


def kind(template: str, git_url: str) -> str:
    """What ``template`` makes: ``empty``, ``git`` or a starter folder name.

    Raises:
        ApiError: INVALID_ARGUMENT for a name CML does not know; UNIMPLEMENTED for one not shipped.
    """
    name = template.strip().lower()
    if name == GIT or (git_url and name in EMPTY):
        return GIT
    if name in EMPTY:
        return "empty"
    for shown, folder in BUILT_IN.items():
        if name == shown.lower():
            return folder
    if name in (t.lower() for t in NOT_SHIPPED):
        raise exceptions.template_unavailable(template)
    raise exceptions.template_unknown(template, known())


def lay_out(folder: Path, starter: str) -> None:
    """Create ``folder`` holding the starter files of a built-in template."""
    shutil.copytree(STARTERS / starter, folder, ignore=shutil.ignore_patterns("__pycache__"))
