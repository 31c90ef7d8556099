"""Projects: each with its own directory, engine variables, jobs, models and applications."""
