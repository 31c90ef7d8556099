"""Workflows: one per job, each receiving a Context (config, platform, state store) and returning an Outcome."""
