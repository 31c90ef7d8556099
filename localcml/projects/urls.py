"""Routes of the projects service: API v2 operation -> handler of ``ProjectsApi``."""

OPERATIONS = {
    "CreateProject": "create_project",
    "ListProjects": "list_projects",
    "ListProjectNames": "list_project_names",
    "GetProject": "get_project",
    "UpdateProject": "update_project",
    "DeleteProject": "delete_project",
    "ListProjectCollaborators": "list_project_collaborators",
    "ValidateAPIKey": "validate_api_key",
}
NOT_IMPLEMENTED = {
    "BatchListProjects": "one local user: list_projects lists every project",
    "AddProjectCollaborator": "the local workspace has one user, who owns every project",
    "DeleteProjectCollaborator": "the local workspace has one user, who owns every project",
    "ListAllRunAsMachineUserCollaborators": "the local workspace has no machine users",
}
NOTES = {
    "CreateProject": (
        "own directory `W/projects/<id>/`: template `Python`, `R`, `PySpark` or `Scala` (CML's built-in "
        "templates: starter files), `local` or `blank` (empty, the default), `git` (a real `git clone` of "
        "`git_url`), or `parent_project` (a copy of its files, as a build copies them); `Churn Predictor` "
        "answers 501 (not shipped), an unknown template 400"
    ),
    "DeleteProject": "stops the project's runs, deployments and applications; the workspace's own project is refused",
    "ListProjectCollaborators": "always empty: one local user owns every project",
    "ValidateAPIKey": "the user's API v2 key and each running engine's own key are valid",
}
