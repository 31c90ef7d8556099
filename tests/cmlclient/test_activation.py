"""The activation point: the workspace raises its own errors, the library's user meets the library's.

``localcml`` imports nothing of the library, so its errors are its own (``localcml.core.errors``);
``local_workspace.translated`` turns each into the library's error of the same name, message and
exit code, so ``cml-monitor`` says and exits exactly as it would for the library's own.
"""

from __future__ import annotations

import pytest
import yaml

import localcml.core.errors as workspace_errors
from localcml.metrics import sdk
from monitoring.app.cli import main
from monitoring.cmlclient import local_workspace, model_endpoint_url
from monitoring.config.pipeline import parse_config
from monitoring.core import errors
from tests.project import MINIMAL


@pytest.fixture
def project(tmp_path):
    """A project whose workspace directory holds a file no workspace writes."""
    data = yaml.safe_load(MINIMAL) | {"platform": {"local": {"workspace_dir": "ws"}}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "pipeline.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "precious.txt").write_text("keep me")
    return tmp_path


def test_a_workspace_refusal_is_the_librarys_config_error_with_its_message_and_exit_code(project, capsys):
    cfg = parse_config(yaml.safe_load((project / "config" / "pipeline.yaml").read_text()), "pipeline.yaml")
    with pytest.raises(errors.ConfigError) as caught:
        local_workspace.reset(cfg, project)
    assert caught.value.problems == [
        f"{project / 'ws'} does not look like a local workspace directory (it holds precious.txt); "
        "not deleting it: check platform.local.workspace_dir"
    ]
    assert isinstance(caught.value.__cause__, workspace_errors.ConfigError)  # chained to the workspace's own

    assert main(["local", "reset", "--project-root", str(project)]) == errors.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration:\n  ") and "does not look like a local workspace" in err
    assert (project / "ws" / "precious.txt").read_text() == "keep me"


def test_no_running_workspace_is_the_librarys_platform_error(project):
    cfg = parse_config(yaml.safe_load((project / "config" / "pipeline.yaml").read_text()), "pipeline.yaml")
    with pytest.raises(errors.PlatformError, match=r"no local workspace runs in .*ws: start it first") as caught:
        local_workspace.fast_forward(cfg, project, until_ms=0)
    assert caught.value.exit_code == errors.EXIT_PLATFORM


def test_the_workspace_sdk_without_its_domain_is_the_librarys_config_error(monkeypatch):
    monkeypatch.delenv("CDSW_DOMAIN", raising=False)
    with pytest.raises(errors.ConfigError, match="CDSW_DOMAIN is not set: it is the workspace host:port"):
        model_endpoint_url(sdk)


@pytest.mark.parametrize(
    "raised, expected, exit_code",
    [
        (workspace_errors.ConfigError(["a", "b"]), errors.ConfigError, errors.EXIT_CONFIG),
        (workspace_errors.PlatformError("the daemon did not start"), errors.PlatformError, errors.EXIT_PLATFORM),
        (
            workspace_errors.NoSpaceError("metrics store out of space", "/mnt"),
            errors.NoSpaceError,
            errors.EXIT_NO_SPACE,
        ),
        (workspace_errors.WorkspaceError("odd"), errors.MonitoringError, errors.EXIT_INTERNAL),
    ],
)
def test_each_workspace_error_becomes_the_librarys_of_the_same_name_message_and_exit_code(raised, expected, exit_code):
    mapped = local_workspace.library_error(raised)
    assert type(mapped) is expected and type(mapped).__name__ == type(raised).__name__.replace(
        "Workspace", "Monitoring"
    )
    assert str(mapped) == str(raised) and mapped.exit_code == raised.exit_code == exit_code
    assert mapped.action == raised.action


def test_other_errors_pass_unchanged():
    assert local_workspace.library_error(ValueError("x")) is None
    with pytest.raises(KeyError), local_workspace.translated():
        raise KeyError("not the workspace's")
