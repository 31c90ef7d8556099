"""The model file CML serves: load the artifact a deployment names, predict, track metrics."""
