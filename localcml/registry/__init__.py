"""CML's Model Registry over the MLflow registry of the workspace's tracking server."""
