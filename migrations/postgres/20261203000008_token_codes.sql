-- Contexts travel through Kafka, where a broker keeps them until retention runs out, so they
-- never carry a bearer token: built-in agents get theirs in process, and an external agent
-- gets a one-time code to exchange for its token over the gateway's API. Only the code's hash
-- is stored; a used or expired code opens nothing.
CREATE TABLE token_codes (
    code_hash  TEXT    PRIMARY KEY,
    mission_id UUID    NOT NULL REFERENCES active_missions (id),
    dept       BIGINT  NOT NULL,
    issued_at  TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    used_at    TEXT
);
CREATE INDEX token_codes_mission ON token_codes (mission_id);

-- When an ended mission's Kafka topics were deleted (they are kept for the configured hours).
ALTER TABLE mission_runs ADD COLUMN topics_deleted_at TEXT;
