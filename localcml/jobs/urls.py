"""Routes of the jobs service: API v2 operation -> handler of ``JobsApi``."""

OPERATIONS = {
    "CreateJob": "create_job",
    "ListJobs": "list_jobs",
    "ListAllJobs": "list_all_jobs",
    "GetJob": "get_job",
    "UpdateJob": "update_job",
    "DeleteJob": "delete_job",
    "CreateJobRun": "create_job_run",
    "ListJobRuns": "list_job_runs",
    "GetJobRun": "get_job_run",
    "StopJobRun": "stop_job_run",
}
NOTES = {
    "CreateJob": (
        "schedule (cron, in `timezone`) fires on the workspace clock; `kernel` is refused (ML Runtimes "
        "project); `runtime_identifier` must name a catalogue runtime; recipients and retries are stored, "
        "not acted on"
    ),
    "CreateJobRun": (
        "the engine is a real process in the project's directory: CML's kernel-wrapper semantics "
        "(`-f` argument, no `__file__`, `sys.exit(0)` fails the run), its own API key, one active run per job"
    ),
    "StopJobRun": "SIGTERM to the engine's process group, SIGKILL after 5 s",
}
