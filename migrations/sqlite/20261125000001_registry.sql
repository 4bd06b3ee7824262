-- Template registry: the current version of each template (denormalised for listing and search),
-- every version ever imported (active missions pin one), per-template history figures, and
-- small key/value facts about the installation.

CREATE TABLE templates (
    pk              INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    sector          TEXT    NOT NULL,
    sector_name     TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    goal            TEXT    NOT NULL,
    baseline_risk   TEXT    NOT NULL CHECK (baseline_risk IN ('Low', 'Medium', 'High')),
    current_version INTEGER NOT NULL CHECK (current_version >= 1),
    logic_hash      TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

CREATE INDEX templates_sector_category ON templates (sector, category);
CREATE INDEX templates_baseline_risk ON templates (baseline_risk);

-- A rowid table: version rows carry kilobytes of JSON, which WITHOUT ROWID tables store badly.
CREATE TABLE template_versions (
    pk           INTEGER PRIMARY KEY,
    template_id  TEXT    NOT NULL REFERENCES templates (id) ON DELETE RESTRICT,
    version      INTEGER NOT NULL CHECK (version >= 1),
    content      TEXT    NOT NULL,
    logic_hash   TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    imported_at  TEXT    NOT NULL,
    UNIQUE (template_id, version)
);

-- Filled by the ROI job; absent rows mean "no history yet".
CREATE TABLE template_stats (
    template_id     TEXT    PRIMARY KEY REFERENCES templates (id) ON DELETE CASCADE,
    runs            INTEGER NOT NULL DEFAULT 0,
    avg_profit      REAL,
    avg_gas         REAL,
    success_rate    REAL,
    est_roi         REAL,
    risk_level      TEXT CHECK (risk_level IN ('Low', 'Medium', 'High')),
    top_performance INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Full-text index over the searchable fields. New rows are indexed by the importer with one
-- INSERT … SELECT per import (a per-row trigger is ten times slower for bulk imports); updates
-- and deletes are kept in step by the triggers below.
CREATE VIRTUAL TABLE template_fts USING fts5 (
    name, goal, category, sector_name,
    content = 'templates', content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2',
    -- Prefix indexes keep search-as-you-type cheap for the first few letters.
    prefix = '1 2 3'
);

CREATE TRIGGER templates_fts_delete AFTER DELETE ON templates BEGIN
    INSERT INTO template_fts (template_fts, rowid, name, goal, category, sector_name)
    VALUES ('delete', old.pk, old.name, old.goal, old.category, old.sector_name);
END;

CREATE TRIGGER templates_fts_update AFTER UPDATE OF name, goal, category, sector_name ON templates BEGIN
    INSERT INTO template_fts (template_fts, rowid, name, goal, category, sector_name)
    VALUES ('delete', old.pk, old.name, old.goal, old.category, old.sector_name);
    INSERT INTO template_fts (rowid, name, goal, category, sector_name)
    VALUES (new.pk, new.name, new.goal, new.category, new.sector_name);
END;
