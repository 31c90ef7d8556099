"""Routes of the applications service: API v2 operation -> handler of ``ApplicationsApi``."""

OPERATIONS = {
    "CreateApplication": "create_application",
    "ListApplications": "list_applications",
    "GetApplication": "get_application",
    "UpdateApplication": "update_application",
    "RestartApplication": "restart_application",
    "StopApplication": "stop_application",
    "DeleteApplication": "delete_application",
}
NOTES = {
    "CreateApplication": (
        "the script runs as a real process in the project's directory with free loopback ports in "
        "`CDSW_APP_PORT`, `CDSW_READONLY_PORT`, `CDSW_PUBLIC_PORT`; served at "
        "`http://<subdomain>.<CDSW_DOMAIN>/` by the workspace (no login: loopback only)"
    ),
    "UpdateApplication": "takes effect at the next restart, as in CML",
}
