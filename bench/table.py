"""The result table: rows, a fixed-width text table for the terminal, Markdown and JSON files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

HEADERS = ("case", "variant", "N", "time s", "peak RSS MB", "rate", "vs baseline", "target", "met?", "note")


@dataclass
class Row:
    """One measured line.

    ``extra_mb`` is the peak above what the process held before the measured block (case a: the
    parsed records); ``time_ratio``/``mem_ratio`` are ours divided by the baseline; ``speedup``
    is a throughput ratio (ours / baseline).
    """

    case: str
    variant: str
    n: int
    seconds: float
    peak_mb: float
    extra_mb: float | None = None
    rate: str = ""
    time_ratio: float | None = None
    mem_ratio: float | None = None
    speedup: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def cells(self) -> list[str]:
        peak = f"{self.peak_mb:,.0f}" + (f" (+{self.extra_mb:,.0f})" if self.extra_mb is not None else "")
        versus = []
        if self.time_ratio is not None:
            if self.case in ("a", "d", "e"):
                how = f"{1 / self.time_ratio:.1f}x faster" if self.time_ratio <= 1 else f"{self.time_ratio:.1f}x slower"
                versus.append(f"time {self.time_ratio:.3f} ({how})")
            else:
                versus.append(f"time {self.time_ratio:.3f}")
        if self.mem_ratio is not None:
            versus.append(f"mem {self.mem_ratio:.2f}")
        if self.speedup is not None:
            versus.append(f"{self.speedup:.1f}x")
        met = "" if self.met is None else ("yes" if self.met else "NO")
        return [
            self.case,
            self.variant,
            f"{self.n:,}",
            f"{self.seconds:.2f}",
            peak,
            self.rate,
            ", ".join(versus),
            self.target,
            met,
            self.note,
        ]


def machine_line(machine: dict) -> str:
    return (
        f"{machine['date']}; {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gb']} GB RAM; "
        f"Linux {machine['kernel']}; Python {machine['python']}, numpy {machine['numpy']}, "
        f"pandas {machine['pandas']}, SQLite {machine['sqlite']}, {machine['postgresql'] or 'no PostgreSQL'}"
    )


def text_table(rows: list[Row]) -> str:
    cells = [list(HEADERS)] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def merge_previous(out_dir: Path, cases: list[str], rows: list[Row], raw: dict) -> tuple[list[Row], dict, dict]:
    """Rows and raw results of cases not run now, kept from an earlier ``results.json`` in ``out_dir``.

    Returns:
        (all rows in case order, all raw results, ``{case: date measured}``).
    """
    dates: dict[str, str] = {}
    path = out_dir / "results.json"
    kept: list[Row] = []
    old_raw: dict = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            kept = [Row(**r) for r in old.get("rows", []) if r["case"] not in cases]
            dates = {r.case: old.get("measured", {}).get(r.case, old["machine"]["date"]) for r in kept}
            old_raw = {k: v for k, v in old.get("raw", {}).items() if k.split("_", 1)[0] not in cases}
        except (ValueError, TypeError, KeyError) as exc:
            print(f"bench: ignoring unreadable {path}: {exc}")
    merged = sorted(kept + rows, key=lambda r: r.case)  # stable: each case keeps its own order
    return merged, {**old_raw, **raw}, dates


def write(out_dir: Path, rows: list[Row], machine: dict, options: dict, raw: dict, failures: list[str]) -> list[Row]:
    """``results.json`` (everything, with each step's raw result) and ``results.md`` (the table).

    Rows of cases not run this time are kept from the previous ``results.json`` (with their date).

    Returns:
        The rows written (previous and new).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = list(options["cases"])
    rows, raw, measured = merge_previous(out_dir, cases, rows, raw)
    measured.update({c: machine["date"] for c in cases})
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "options": options,
                "measured": measured,
                "rows": [asdict(r) for r in rows],
                "failures": failures,
                "raw": raw,
            },
            indent=1,
            default=str,
        )
    )
    md = [
        f"Machine: {machine_line(machine)}",
        "",
        "Measured: " + "; ".join(f"({c}) {d}" for c, d in sorted(measured.items())),
        "",
        markdown_table(rows),
    ]
    if failures:
        md += ["", "Failed cases:", *[f"- {f}" for f in failures]]
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    return rows
