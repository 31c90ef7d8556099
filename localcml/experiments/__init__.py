"""CML Experiments over the workspace's real MLflow tracking server (API v2 and ``MLFLOW_TRACKING_URI``)."""
