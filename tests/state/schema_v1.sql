-- The state store's schema version 1, frozen: a copy of store._SCHEMA as released.
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS scenario (model TEXT PRIMARY KEY, epoch_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS pending_labels (uuid TEXT PRIMARY KEY, deployment_crn TEXT NOT NULL,
    label INTEGER NOT NULL, due_ms BIGINT NOT NULL, posted_ms BIGINT);
CREATE INDEX IF NOT EXISTS pending_labels_due ON pending_labels (posted_ms, due_ms);
CREATE TABLE IF NOT EXISTS deployments (seq {pk}, deployment_crn TEXT NOT NULL UNIQUE, model TEXT NOT NULL,
    model_crn TEXT, build_id TEXT, version TEXT, deployed_ms BIGINT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS deployments_model ON deployments (model, deployed_ms);
CREATE TABLE IF NOT EXISTS watermarks (deployment_crn TEXT PRIMARY KEY, ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (deployment_crn TEXT NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
    predictions INTEGER NOT NULL, labelled INTEGER NOT NULL, metric_accuracy DOUBLE PRECISION,
    metric_precision DOUBLE PRECISION, metric_recall DOUBLE PRECISION, metric_f1 DOUBLE PRECISION,
    confusion TEXT NOT NULL, drift TEXT NOT NULL, latency_p50_ms DOUBLE PRECISION, latency_p95_ms DOUBLE PRECISION,
    PRIMARY KEY (deployment_crn, start_ms));
CREATE TABLE IF NOT EXISTS decisions (seq {pk}, id TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL,
    model TEXT NOT NULL, deployment_crn TEXT NOT NULL, action TEXT NOT NULL, body TEXT NOT NULL,
    consumed_by TEXT, consumed_ms BIGINT, outcome TEXT, outcome_detail TEXT, finished_ms BIGINT);
CREATE INDEX IF NOT EXISTS decisions_model ON decisions (model, created_ms)
