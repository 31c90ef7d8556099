"""Routes of the models service: API v2 operation -> handler of ``ModelsApi``."""

OPERATIONS = {
    "CreateModel": "create_model",
    "ListModels": "list_models",
    "ListAllModels": "list_all_models",
    "GetModel": "get_model",
    "UpdateModel": "update_model",
    "DeleteModel": "delete_model",
    "CreateModelBuild": "create_model_build",
    "ListModelBuilds": "list_model_builds",
    "GetModelBuild": "get_model_build",
    "DeleteModelBuild": "delete_model_build",
    "CreateModelDeployment": "create_model_deployment",
    "ListModelDeployments": "list_model_deployments",
    "GetModelDeployment": "get_model_deployment",
    "StopModelDeployment": "stop_model_deployment",
    "RestartModelDeployment": "restart_model_deployment",
}
NOT_IMPLEMENTED = {
    "ListMlServingApps": "Cloudera AI Inference service apps are not emulated",
}
NOTES = {
    "CreateModel": "`auto_build_model`/`auto_deploy_model` are refused: build and deploy explicitly; a `registered_model_id` must name a registered model",
    "CreateModelDeployment": (
        "replicas are real single-threaded model server processes; a build not yet built is waited "
        "for (the deployment fails if the build fails); replaces the model's previous deployment "
        "once healthy; `cpu`, `memory`, `nvidia_gpus` are recorded, not enforced"
    ),
    "CreateModelBuild": (
        "snapshot of the project's files (no workspace directory, virtualenv, state store or cache; "
        "at most `platform.local.build_max_mb`), or with `registered_model_version_id` and no `file_path`, "
        "the version's MLflow model served as a pyfunc (`dataframe_split`/`dataframe_records` in, "
        "`predictions` out); then a check that loads the model the way a replica does (same loader); "
        "statuses pending, building, built, build failed, timedout"
    ),
    "DeleteModelBuild": "refused while a deployment of the build is not stopped",
    "UpdateModel": "changes name, description, visibility and auth_enabled",
}
