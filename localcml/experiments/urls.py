"""Routes of the experiments service: API v2 operation -> handler of ``ExperimentsApi``."""

OPERATIONS = {
    "CreateExperiment": "create_experiment",
    "ListExperiments": "list_experiments",
    "ListAllExperiments": "list_all_experiments",
    "GetExperiment": "get_experiment",
    "UpdateExperiment": "update_experiment",
    "DeleteExperiment": "delete_experiment",
    "CreateExperimentRun": "create_experiment_run",
    "ListExperimentRuns": "list_experiment_runs",
    "GetExperimentRun": "get_experiment_run",
    "UpdateExperimentRun": "update_experiment_run",
    "DeleteExperimentRun": "delete_experiment_run",
    "LogExperimentRunBatch": "log_experiment_run_batch",
    "DeleteExperimentRunBatch": "delete_experiment_run_batch",
    "GetExperimentRunMetrics": "get_experiment_run_metrics",
}
_SERVER = (
    "answered by the workspace's MLflow tracking server (started on first use; `MLFLOW_TRACKING_URI` of every engine)"
)
NOTES = {
    "CreateExperiment": f"{_SERVER}; the experiment is tagged with its project",
    "ListExperiments": "experiments made by `mlflow` itself (no project tag) belong to the workspace's own project",
    "DeleteExperimentRunBatch": "deletes tags; MLflow keeps params and metrics, so naming one is refused (400)",
    "LogExperimentRunBatch": "metrics, params and tags in one MLflow `log-batch`; `model_json` is logged as the run's model",
}
