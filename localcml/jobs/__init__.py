"""Jobs and job runs: engines as real processes, one active run per job, dependents, cron schedules."""
