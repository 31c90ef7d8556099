"""AMP task: train v1 into the artifacts directory (the AMP's build_model/deploy_model tasks ship it)."""

from monitoring.app.cli import main

main(["bootstrap", "--train-only"])
