"""The documentation holds together: links and anchors resolve, and the README's tables follow the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted({*REPO.glob("*.md"), *(REPO / "docs").rglob("*.md"), *REPO.glob("examples/*/README.md")})
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [a or b for a, b in LINK.findall(text)]


def test_the_docs_are_found():
    names = {p.relative_to(REPO).as_posix() for p in DOCS}
    assert "README.md" in names and any(n.startswith("docs/") for n in names)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(doc):
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert broken == [], f"{doc.relative_to(REPO)}: " + "; ".join(broken)


# -- the README's operator tables follow the code --------------------------------------------
def doc_section(title: str, doc: str = "README.md") -> str:
    text = (REPO / doc).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"{doc} has no section '## {title}'"
    return match.group(1)


REFERENCE = "docs/configuration.md"


def table_rows(section: str) -> list[list[str]]:
    """Cells of every Markdown table row (header and rule rows included; callers filter)."""
    return [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines() if line.startswith("|")
    ]


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def config_keys(model: type, prefix: str = "") -> tuple[set[str], dict[str, set[str]]]:
    """Dotted keys of a pydantic config model; list-of-model keys map to their item field names."""
    from pydantic import BaseModel

    keys: set[str] = set()
    items: dict[str, set[str]] = {}
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sub_keys, sub_items = config_keys(annotation, f"{key}.")
            keys |= sub_keys
            items.update(sub_items)
            continue
        keys.add(key)
        args = getattr(annotation, "__args__", ())
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            items[key] = set(args[0].model_fields)
    return keys, items


def test_every_config_key_is_in_the_configuration_reference():
    from monitoring.config.pipeline import JobSpec, PipelineConfig

    keys, items = config_keys(PipelineConfig)
    documented: dict[str, str] = {}
    for cells in table_rows(doc_section("Keys", REFERENCE)):
        names = ticked(cells[0])
        if names and "." in names[0]:  # `a.b.c`, `d`, `e`: d and e are siblings of c
            parent = names[0].rsplit(".", 1)[0]
            for name in names:
                documented[name if "." in name else f"{parent}.{name}"] = " | ".join(cells)
        elif names and names[0] in keys:  # a whole optional section (`ground_truth`)
            documented[names[0]] = " | ".join(cells)
    assert sorted(keys - set(documented)) == []
    assert sorted(set(documented) - keys) == []
    job_row = documented["jobs.graph"]
    assert [f for f in JobSpec.model_fields if f"`{f}`" not in job_row] == []
    assert items["jobs.graph"] == set(JobSpec.model_fields)


def test_every_threshold_policy_and_field_is_in_the_configuration_reference():
    from typing import get_args

    from monitoring.config.pipeline import Policy

    union = get_args(Policy)[0]
    rows = {
        ticked(cells[0])[0]: cells[1] for cells in table_rows(doc_section("Policies", REFERENCE)) if ticked(cells[0])
    }
    for policy in get_args(union):
        kind = get_args(policy.model_fields["kind"].annotation)[0]
        assert kind in rows, f"policy kind {kind!r} is not in the policy table"
        missing = [f for f in policy.model_fields if f != "kind" and f"`{f}`" not in rows[kind]]
        assert missing == [], f"policy {kind!r}: fields {missing} are not in the reference"


def test_the_readme_yaml_examples_are_excerpts_of_the_shipped_config():
    config = (REPO / "config" / "pipeline.yaml").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.M | re.S)
    assert blocks, "the README shows no example from config/pipeline.yaml"
    assert [b for b in blocks if b not in config] == []


def test_the_exit_code_table_has_one_row_per_code_and_failure_action():
    from monitoring.app.jobrun import FAILURE_ACTIONS
    from monitoring.core import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    rows = [cells for cells in table_rows(doc_section("Exit codes")) if cells[0].isdigit()]
    documented = [int(cells[0]) for cells in rows]
    assert sorted(documented) == sorted(codes)
    assert set(FAILURE_ACTIONS) <= set(documented)
    tables = {doc.relative_to(REPO).as_posix(): doc.read_text(encoding="utf-8").count("| code |") for doc in DOCS}
    assert {doc: n for doc, n in tables.items() if n} == {"README.md": 1}, "one exit-code table, in the README"
