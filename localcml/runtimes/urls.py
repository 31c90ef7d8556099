"""Routes of the runtimes service: API v2 operation -> handler of ``RuntimesApi``."""

OPERATIONS = {
    "ListRuntimes": "list_runtimes",
    "ListRuntimeAddons": "list_runtime_addons",
}
_IMAGES = "the local workspace runs every runtime on its own interpreter; it pulls no images"
NOT_IMPLEMENTED = {
    "RegisterCustomRuntime": _IMAGES,
    "ValidateCustomRuntime": _IMAGES,
    "UpdateRuntimeStatus": _IMAGES,
    "SetDockerCredential": _IMAGES,
    "HandleCustomRuntimeUpload": _IMAGES,
    "LoadRuntimeAddonsUpload": "the local workspace has one add-on, Spark (the pyspark installed here); it loads no others",
    "UpdateRuntimeAddonStatus": "the Spark add-on's status follows whether pyspark is installed; it cannot be changed",
    "ListRuntimeRepos": _IMAGES,
    "CreateRuntimeRepo": _IMAGES,
    "UpdateRuntimeRepo": _IMAGES,
    "DeleteRuntimeRepo": _IMAGES,
    "ListDockerCredentials": _IMAGES,
    "CreateDockerCredential": _IMAGES,
    "UpdateDockerCredential": _IMAGES,
    "DeleteDockerCredential": _IMAGES,
}
NOTES = {
    "ListRuntimes": (
        "a catalogue of PBJ Workbench and JupyterLab editors x Python 3.9-3.12 x Standard and Nvidia GPU "
        "editions (and the older Workbench editor), all run by the local interpreter"
    ),
    "ListRuntimeAddons": (
        "one add-on, Spark (`spark<version>-local`): the pyspark installed in the workspace's interpreter, run "
        "local[2] by each data connection (`cml.data_v1`); FAILED, saying why, when pyspark is not installed"
    ),
}
