"""The live dashboard: a small Flask application CML serves as an Application, reading the state store read-only."""
