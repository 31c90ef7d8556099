"""Models, builds, deployments: build checks, replica processes, the model endpoint router."""
