"""The pipeline's own state between jobs: watermarks, windows, decisions, deployments, labels."""
