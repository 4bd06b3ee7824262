-- The squad engine's state. Jobs are the orchestrator's units of work (one per plan step, plus
-- one orchestration job per mission); mission_events is both the transactional outbox (rows
-- with no published_at are waiting for the relay) and each mission's event history;
-- squad_inbox records which events a consumer has applied, so a redelivered event is dropped;
-- mission_runs holds the outcome of every finished mission for the ROI history.

ALTER TABLE active_missions ADD COLUMN ended_at TEXT;
ALTER TABLE active_missions ADD COLUMN end_reason TEXT;
-- Which running engine has the squad assembled, and until when its claim holds: a mission
-- whose owner stopped renewing is re-assembled by the next engine that starts.
ALTER TABLE active_missions ADD COLUMN squad_owner TEXT;
ALTER TABLE active_missions ADD COLUMN squad_lease_until TEXT;

CREATE TABLE mission_jobs (
    job_id          TEXT    PRIMARY KEY,
    mission_id      UUID    NOT NULL REFERENCES active_missions (id),
    step            BIGINT NOT NULL CHECK (step >= 0),
    dept            BIGINT NOT NULL,
    action          TEXT    NOT NULL,
    tool_id         TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('Assigned', 'Reported', 'Done', 'Failed')),
    report_event_id TEXT,
    report          TEXT,
    cost_cents      BIGINT NOT NULL DEFAULT 0,
    value_cents     BIGINT NOT NULL DEFAULT 0,
    assigned_at     TEXT    NOT NULL,
    finished_at     TEXT,
    UNIQUE (mission_id, step)
);

CREATE TABLE mission_events (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    mission_id   UUID    NOT NULL REFERENCES active_missions (id),
    job_id       TEXT    NOT NULL,
    dept         BIGINT NOT NULL,
    kind         TEXT    NOT NULL,
    ts           TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    published_at TEXT
);
CREATE INDEX mission_events_unpublished ON mission_events (seq) WHERE published_at IS NULL;
CREATE INDEX mission_events_mission ON mission_events (mission_id, seq);

CREATE TABLE squad_inbox (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE mission_runs (
    mission_id       UUID    PRIMARY KEY REFERENCES active_missions (id),
    template_id      TEXT    NOT NULL,
    template_version BIGINT NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('Completed', 'Failed', 'Expired', 'Stopped')),
    profit_cents     BIGINT NOT NULL,
    gas_cents        BIGINT NOT NULL,
    steps            BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    failure_reason   TEXT,
    started_at       TEXT,
    ended_at         TEXT    NOT NULL
);
CREATE INDEX mission_runs_template ON mission_runs (template_id, ended_at);
