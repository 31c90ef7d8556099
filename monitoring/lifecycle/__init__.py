"""The model's lifecycle in CML's Experiments and Model Registry (MLflow): training runs and registered versions."""
