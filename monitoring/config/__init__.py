"""The config schema: what ``config/pipeline.yaml`` may say (the pipeline, the model spec, data, ground truth, job graph rules, metric names)."""
