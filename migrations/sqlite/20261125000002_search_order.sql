-- Search ranks by field tier, then shorter name, then import order, instead of bm25: bm25 reads
-- each match's length record, about a microsecond a match, so a broad prefix over 100,000
-- templates cost tens of milliseconds. The index rowid now carries the in-tier order
-- ((name length << 32) | template pk), so a tier's best page is the first rows of its match,
-- read straight off the index in rowid order.
DROP TRIGGER templates_fts_delete;
DROP TRIGGER templates_fts_update;
DROP TABLE template_fts;

CREATE VIRTUAL TABLE template_search USING fts5 (
    name, goal, category, sector_name,
    -- The text lives in `templates`; the index keeps only what matching needs.
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2',
    -- One- and two-letter prefixes are what search-as-you-type asks first and what match the
    -- most terms; longer prefixes match few enough terms to merge quickly without an index.
    prefix = '1 2'
);

-- Pending index data is flushed when it reaches this size: a large buffer turns an import into
-- one segment instead of dozens of small ones to merge.
INSERT INTO template_search (template_search, rank) VALUES ('hashsize', 33554432);

-- Rows must arrive in rowid order: a smaller rowid forces a flush of everything pending.
INSERT INTO template_search (rowid, name, goal, category, sector_name)
SELECT (length(name) << 32) | pk, name, goal, category, sector_name FROM templates ORDER BY 1;

-- The importer keeps the index in step for new and changed templates, inserting in rowid order
-- (per-row triggers would flush the pending index on every out-of-order row); deletes follow
-- this trigger.
CREATE TRIGGER templates_search_delete AFTER DELETE ON templates BEGIN
    DELETE FROM template_search WHERE rowid = (length(old.name) << 32) | old.pk;
END;

-- The risk filter compares COALESCE(historical risk, baseline risk), which no index on the
-- baseline alone can serve; the index only cost every import.
DROP INDEX templates_baseline_risk;
