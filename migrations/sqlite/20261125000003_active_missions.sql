-- Active missions: one row per saved perimeter. The template version and its logic_hash are
-- copied in, so later imports of the template never change what a saved mission runs.
-- request_id makes Save idempotent per opening of the configurator: a retried request returns
-- the mission it already created instead of creating a second one.
CREATE TABLE active_missions (
    id               TEXT    PRIMARY KEY,
    request_id       TEXT    NOT NULL UNIQUE,
    request_hash     TEXT    NOT NULL,
    template_id      TEXT    NOT NULL,
    template_name    TEXT    NOT NULL,
    template_version INTEGER NOT NULL,
    logic_hash       TEXT    NOT NULL,
    sector           TEXT    NOT NULL,
    budget_cents     INTEGER NOT NULL CHECK (budget_cents > 0),
    ttl_seconds      INTEGER NOT NULL CHECK (ttl_seconds > 0),
    max_steps        INTEGER NOT NULL CHECK (max_steps > 0),
    approval_mode    TEXT    NOT NULL CHECK (approval_mode IN ('Strict', 'Threshold', 'Auto')),
    threshold_cents  INTEGER CHECK (threshold_cents IS NULL OR threshold_cents >= 0),
    connections      TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    FOREIGN KEY (template_id, template_version)
        REFERENCES template_versions (template_id, version) ON DELETE RESTRICT
);

CREATE INDEX active_missions_created ON active_missions (created_at DESC, id DESC);
