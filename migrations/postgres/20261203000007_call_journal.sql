-- The gateway's call journal: one row per tool call between its reservation and its
-- settlement, written in the same transaction as the reservation. A row still Running after
-- its process died is found and settled (the estimate charged, a record written), so a crash
-- never leaves cents reserved for good. A call that carries an idempotency key keeps its row
-- with the recorded outcome, and the same key returns that outcome instead of running the tool
-- again; rows without a key are deleted when they settle.
CREATE TABLE tool_calls (
    call_key       TEXT    NOT NULL,
    mission_id     UUID    NOT NULL REFERENCES active_missions (id),
    keyed          BOOLEAN NOT NULL,
    tool_id        TEXT    NOT NULL,
    args_hash      TEXT    NOT NULL,
    step           BIGINT  NOT NULL,
    reserved_cents BIGINT  NOT NULL CHECK (reserved_cents >= 0),
    reserved_at    TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('Running', 'Done', 'Failed', 'Interrupted')),
    outcome        TEXT,
    audit_seq      BIGINT,
    PRIMARY KEY (call_key, mission_id)
);
-- The recovery sweep reads the oldest Running rows.
CREATE INDEX tool_calls_running ON tool_calls (reserved_at) WHERE state = 'Running';
