"""Data connections: named Spark data lake connections over a local warehouse, and the workspace's Spark settings."""
