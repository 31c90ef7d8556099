"""Errors of the projects service, as CML answers them."""

from __future__ import annotations

from localcml.core.errors import ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, UNIMPLEMENTED, ApiError


def project_exists(name: str) -> ApiError:
    return ApiError(ALREADY_EXISTS, f"a project named {name!r} already exists")


def template_unavailable(template: str) -> ApiError:
    return ApiError(
        UNIMPLEMENTED,
        f"CreateProject: template {template!r} is a CML template the local workspace does not ship; use "
        "Python, R, PySpark or Scala (starter files), 'local' or 'blank' (an empty project), 'git' with "
        "git_url (a clone), or parent_project (a copy)",
    )


def template_unknown(template: str, known: str) -> ApiError:
    return ApiError(
        INVALID_ARGUMENT, f"CreateProjectRequest.template {template!r} is not a project template; one of: {known}"
    )


def clone_failed(url: str, detail: str) -> ApiError:
    return ApiError(FAILED_PRECONDITION, f"CreateProject: git clone of {url!r} failed: {detail}")


def own_project(project_id: str) -> ApiError:
    return ApiError(
        FAILED_PRECONDITION,
        f"project {project_id} is the workspace's own project (its files are the project root you "
        "started the workspace on); it cannot be deleted: reset the workspace instead",
    )


def bad_file_path(path: str) -> ApiError:
    return ApiError(INVALID_ARGUMENT, f"file path {path!r} must be inside the project (relative, without '..')")
