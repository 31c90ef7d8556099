"""AMP task: wire the job chain (parents, the head job's schedule) with `cml-monitor graph apply`."""

from monitoring.app.cli import main

main(["graph", "apply"])
