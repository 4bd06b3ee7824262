-- Template registry: the current version of each template (denormalised for listing and search),
-- every version ever imported (active missions pin one), per-template history figures, and
-- small key/value facts about the installation.

CREATE TABLE templates (
    pk              BIGSERIAL PRIMARY KEY,
    id              TEXT        NOT NULL UNIQUE,
    name            TEXT        NOT NULL,
    sector          TEXT        NOT NULL,
    sector_name     TEXT        NOT NULL,
    category        TEXT        NOT NULL,
    goal            TEXT        NOT NULL,
    baseline_risk   TEXT        NOT NULL CHECK (baseline_risk IN ('Low', 'Medium', 'High')),
    current_version BIGINT      NOT NULL CHECK (current_version >= 1),
    logic_hash      TEXT        NOT NULL,
    content_hash    TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    search          TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', name), 'A') ||
        setweight(to_tsvector('simple', category), 'B') ||
        setweight(to_tsvector('simple', sector_name), 'B') ||
        setweight(to_tsvector('simple', goal), 'C')
    ) STORED
);

CREATE INDEX templates_sector_category ON templates (sector, category);
CREATE INDEX templates_baseline_risk ON templates (baseline_risk);
CREATE INDEX templates_search ON templates USING GIN (search);

CREATE TABLE template_versions (
    template_id  TEXT        NOT NULL REFERENCES templates (id) ON DELETE RESTRICT,
    version      BIGINT      NOT NULL CHECK (version >= 1),
    content      JSONB       NOT NULL,
    logic_hash   TEXT        NOT NULL,
    content_hash TEXT        NOT NULL,
    source       TEXT        NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (template_id, version)
);

-- Filled by the ROI job; absent rows mean "no history yet".
CREATE TABLE template_stats (
    template_id     TEXT PRIMARY KEY REFERENCES templates (id) ON DELETE CASCADE,
    runs            BIGINT  NOT NULL DEFAULT 0,
    avg_profit      DOUBLE PRECISION,
    avg_gas         DOUBLE PRECISION,
    success_rate    DOUBLE PRECISION,
    est_roi         DOUBLE PRECISION,
    risk_level      TEXT CHECK (risk_level IN ('Low', 'Medium', 'High')),
    top_performance BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
