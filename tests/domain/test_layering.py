"""The domain layer imports no platform code; serving reaches cdsw only lazily, through the adapter."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOMAIN = ["data", "training", "serving", "drift", "records", "record_blocks", "windows", "analyze"]


def test_importing_the_domain_loads_no_platform_module():
    code = ("import sys\n"
            + "".join(f"import monitoring.{m}\n" for m in DOMAIN)
            + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('cdsw', 'cmlapi', 'cml')"
              " or m.startswith('monitoring.cmlclient') or m.startswith('monitoring.local')"
              " or m == 'matplotlib.pyplot')\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_only_serving_mentions_the_platform_adapter_and_never_cdsw_directly():
    for name in DOMAIN:
        tree = ast.parse((REPO / "monitoring" / f"{name}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] in ("cdsw", "cmlapi", "cml")}, name
        platform = {m for m in imported if m.startswith("monitoring.cmlclient") or m.startswith("monitoring.local")}
        assert platform == ({"monitoring.cmlclient"} if name == "serving" else set()), (name, platform)
