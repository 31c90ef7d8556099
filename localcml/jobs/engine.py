"""A job run's engine: runs a script the way CML's Jupyter-kernel job wrapper does.

``python -m localcml.jobs.engine SCRIPT [ARG...]`` runs SCRIPT's code as ``__main__`` but
without ``__file__``, with an extra ``-f <kernel connection file>`` in ``sys.argv``. The run
succeeds only if the script returns normally: ANY ``SystemExit``, even ``sys.exit(0)``, is a
failed run (as reported for CML Runtime jobs), and so is an uncaught exception. When
``CML_MONITOR_EXIT_FILE`` names a file, the engine writes ``{"code": N}`` there as it ends (the
variable is removed before the script runs), so that a restarted workspace daemon, which is not
the engine's parent, learns how the run ended.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
import types
import uuid
from pathlib import Path

from localcml.core.processes import EXIT_FILE_ENV, write_exit

EXIT_FAILED = 1


def _connection_file() -> str:
    """A Jupyter-style kernel connection file, like the one CML's wrapper passes with ``-f``."""
    folder = Path(tempfile.gettempdir()) / "cml-monitor-kernels"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"kernel-{uuid.uuid4()}.json"
    path.write_text(
        json.dumps(
            {
                "transport": "tcp",
                "ip": "127.0.0.1",
                "kernel_name": "python3",
                "signature_scheme": "hmac-sha256",
                "key": uuid.uuid4().hex,
            }
        )
    )
    return str(path)


def run(script: str, args: list[str]) -> int:
    """Run ``script`` as the job's code and return the engine's exit status (0 only on success)."""
    path = Path(script)
    try:
        source = path.read_text()
    except OSError as exc:
        print(f"Engine error: cannot read job script {script!r} in {os.getcwd()}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    connection = _connection_file()
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [str(path), "-f", connection, *args]
    if sys.path and sys.path[0] != "":
        sys.path.insert(0, "")
    try:
        code = compile(source, str(path), "exec")
        exec(code, module.__dict__)
    except SystemExit as exc:
        print(
            f"Engine exited with SystemExit({exc.code!r}): the run is marked failed "
            "(return normally from the script to succeed)",
            file=sys.stderr,
        )
        return exc.code if isinstance(exc.code, int) and exc.code > 0 else EXIT_FAILED
    except BaseException:  # noqa: BLE001 - any uncaught exception fails the run, as in a kernel
        traceback.print_exc()
        return EXIT_FAILED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        Path(connection).unlink(missing_ok=True)
    return 0


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: python -m localcml.jobs.engine SCRIPT [ARG...]", file=sys.stderr)
        sys.exit(2)
    exit_file = os.environ.pop(EXIT_FILE_ENV, None)
    code = run(sys.argv[1], sys.argv[2:])
    if exit_file:
        write_exit(exit_file, {"code": code})
    sys.exit(code)


if __name__ == "__main__":
    main()
