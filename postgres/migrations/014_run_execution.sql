-- The workflow execution (Temporal run id) that began each ingestion. An ingestion is resumed
-- only by the execution that began it: an Ingest retried within the same execution keeps what
-- was committed (its workflow task was retried, a local activity starting again at attempt 1),
-- while a new execution of the same run id (the file run again) starts over. NULL for the
-- ingestions begun before this column, which a retry resumes as before.
ALTER TABLE runs ADD COLUMN execution text;
