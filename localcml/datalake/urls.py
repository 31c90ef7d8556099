"""Routes of the Spark settings: API v2 operation -> handler of ``SparkSettingsApi``."""

OPERATIONS = {
    "ReadWorkspaceSparkDefault": "read_workspace_spark_default",
    "SetWorkspaceSparkDefault": "set_workspace_spark_default",
    "ReadCMLSparkDefault": "read_cml_spark_default",
}
NOT_IMPLEMENTED = {
    "ReadBaseClusterSparkDefault": "there is no base cluster locally: each data connection's Spark runs in its engine",
}
NOTES = {
    "ReadWorkspaceSparkDefault": (
        "the spark-defaults.conf text set for the workspace (one with pushdown, one without; empty until set)"
    ),
    "SetWorkspaceSparkDefault": (
        "stored in W/datalake/spark-defaults.json; every local data connection's session starts with the text "
        "without pushdown, under the settings CML fixes"
    ),
    "ReadCMLSparkDefault": (
        "the settings the workspace fixes for a data connection's session (master, warehouse, Derby catalog in "
        "W/datalake/<name>/), as spark-defaults.conf text, for the first defined connection"
    ),
}
