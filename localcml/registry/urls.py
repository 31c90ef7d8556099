"""Routes of the registry service: API v2 operation -> handler of ``RegistryApi``."""

OPERATIONS = {
    "CreateRegisteredModel": "create_registered_model",
    "ListRegisteredModels": "list_registered_models",
    "GetRegisteredModel": "get_registered_model",
    "UpdateRegisteredModel": "update_registered_model",
    "DeleteRegisteredModel": "delete_registered_model",
    "GetRegisteredModelVersion": "get_registered_model_version",
    "UpdateRegisteredModelVersion": "update_registered_model_version",
    "DeleteRegisteredModelVersion": "delete_registered_model_version",
}
NOTES = {
    "CreateRegisteredModel": (
        "a new version of the MLflow registered model `model_name` from `runs:/<run_id>/<model_path>` "
        "(refused, 400, when no MLflow model is there); ids derive from MLflow's name and version number"
    ),
    "UpdateRegisteredModelVersion": "notes and tags; a tag with key `alias` moves that MLflow alias (champion, challenger) to the version",
    "GetRegisteredModelVersion": "`model_version_metadata.mlflow_metadata` holds the source run's experiment, metrics, params and tags",
}
