-- Each audit record names its operation (tool.invoke, mission.save, approval.decide, ...), so
-- the log covers every mutation, not only tool calls. Older records have none.
ALTER TABLE audit_log ADD COLUMN action TEXT;
