-- The tool gateway's state: what a running mission has used, who granted its sector
-- connections, the tokens agents present, the approvals queue and the signed audit log.
-- Times are RFC 3339 UTC text with microseconds and a Z, so text order is time order on both
-- backends and an audit record hashes to the same bytes wherever it is read.

ALTER TABLE active_missions ADD COLUMN started_at TEXT;
ALTER TABLE active_missions ADD COLUMN expires_at TEXT;
ALTER TABLE active_missions ADD COLUMN steps_used INTEGER NOT NULL DEFAULT 0 CHECK (steps_used >= 0);
ALTER TABLE active_missions ADD COLUMN reserved_cents INTEGER NOT NULL DEFAULT 0 CHECK (reserved_cents >= 0);
ALTER TABLE active_missions ADD COLUMN spent_cents INTEGER NOT NULL DEFAULT 0 CHECK (spent_cents >= 0);

-- One row per granted connection: which sector, who ticked it and when.
CREATE TABLE mission_connections (
    mission_id TEXT NOT NULL REFERENCES active_missions (id),
    sector     TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (mission_id, sector)
);

-- Connections saved before grants were recorded keep the mission's save time.
INSERT INTO mission_connections (mission_id, sector, granted_by, granted_at)
SELECT m.id, j.value, 'operator', m.created_at
FROM active_missions m, json_each(m.connections) j;

-- Agent tokens are stored only as SHA-256 hashes; the token itself is shown once.
CREATE TABLE gateway_tokens (
    token_hash TEXT    PRIMARY KEY,
    mission_id TEXT    NOT NULL REFERENCES active_missions (id),
    dept       INTEGER NOT NULL,
    issued_by  TEXT    NOT NULL,
    issued_at  TEXT    NOT NULL
);
CREATE INDEX gateway_tokens_mission ON gateway_tokens (mission_id);

CREATE TABLE approvals (
    id           TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('ToolCall', 'BudgetCap')),
    mission_id   TEXT    NOT NULL REFERENCES active_missions (id),
    dept         INTEGER,
    job_id       TEXT,
    tool_id      TEXT,
    args_hash    TEXT,
    args         TEXT,
    cost_cents   INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('Pending', 'Approved', 'Denied', 'Expired', 'Used')),
    requested_at TEXT    NOT NULL,
    expires_at   TEXT,
    decided_by   TEXT,
    decided_at   TEXT,
    budget_cents INTEGER
);
-- At most one open request per exact call (or per mission for a budget cap).
CREATE UNIQUE INDEX approvals_one_open ON approvals (mission_id, kind, coalesce(tool_id, ''), coalesce(args_hash, ''))
    WHERE status IN ('Pending', 'Approved');
CREATE INDEX approvals_status ON approvals (status, requested_at);

CREATE TABLE audit_keys (
    key_id     TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    ts         TEXT    NOT NULL,
    mission_id TEXT,
    job_id     TEXT,
    dept       INTEGER,
    caller     TEXT    NOT NULL,
    tool_id    TEXT,
    args_hash  TEXT,
    decision   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    sector     TEXT,
    grant_text TEXT,
    policy_ids TEXT    NOT NULL,
    cost_cents INTEGER NOT NULL,
    simulated  INTEGER NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    signature  TEXT    NOT NULL
);
CREATE INDEX audit_log_mission ON audit_log (mission_id, seq);
CREATE INDEX audit_log_sector ON audit_log (sector, seq);

-- The chain's signed head: the last record's seq and hash. Every append moves it in the same
-- transaction, so cutting records off the end is detected too; its row lock serialises
-- appends across app instances.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL,
    key_id    TEXT,
    signature TEXT
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only in the database too; verify still detects changes made around these triggers.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
