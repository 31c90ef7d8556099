"""A workspace daemon as ``cml-monitor local up`` starts it, crashed (real SIGKILL) and restarted by a test."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import requests

from localcml import daemon as daemon_module
from localcml.client import default_client
from tests.chaos.processes import sigkill_group


class Daemon:
    """The daemon of workspace W serving ``project_root``.

    Args:
        workspace_dir: W.
        project_root: the project it serves.
        args: more daemon arguments (``--replica-backoff 0``, ``--busy-timeout 0.5``).
    """

    def __init__(self, workspace_dir: Path, project_root: Path, args: Sequence[str] = ()):
        self.workspace_dir = Path(workspace_dir).resolve()
        self.project_root = Path(project_root).resolve()
        self.args = tuple(args)
        self.info: dict = {}

    def up(self) -> Daemon:
        """Start the daemon (or find the live one), as ``cml-monitor local up`` does."""
        self.info = dict(daemon_module.ensure_running(self.workspace_dir, self.project_root, daemon_args=self.args))
        return self

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    def crash(self) -> None:
        """SIGKILL the daemon's process group (what it started itself runs in groups of its own)."""
        pid = self.pid
        sigkill_group(pid, f"the workspace daemon {pid}")
        child = daemon_module._SPAWNED.pop(pid, None)  # spawned by this test process: reap it
        if child is not None:
            child.wait(30)

    def down(self) -> bool:
        """``cml-monitor local down``."""
        return daemon_module.shutdown(self.workspace_dir)

    def client(self):
        """A ``CMLServiceApi`` of the daemon (as the user)."""
        return default_client(url=self.info["url"], cml_api_key=self.info["api_key"])

    @property
    def project_id(self) -> str:
        return self.info["project_id"]

    def call_model(self, access_key: str, request: dict) -> requests.Response:
        """One model request through the daemon's model endpoint, with the model API key."""
        return requests.post(
            f"{self.info['url']}/model",
            json={"accessKey": access_key, "request": request},
            headers={"Authorization": f"Bearer {self.info['model_api_key']}"},
            timeout=60,
        )

    def get_app(self, subdomain: str, path: str = "/") -> requests.Response:
        """A GET through the daemon's forwarder to the application at ``<subdomain>.<domain>``."""
        return requests.get(
            f"{self.info['url']}{path}", headers={"Host": f"{subdomain}.127.0.0.1:{self.info['port']}"}, timeout=30
        )
