-- A big run's new transactions are inserted in parts, each part its own transaction on its own
-- connection, so that PostgreSQL inserts them on several cores (FinishIngestFile). The
-- settlement's last transaction then needs how many transactions the parts inserted: each part
-- adds its count here, in the transaction that inserts them, for the ingestion runs.num names.
-- The last transaction reads it, records it as new_count and sets it back to 0; BeginIngest
-- sets it to 0 when an ingestion starts over.
ALTER TABLE runs ADD COLUMN settling_new bigint NOT NULL DEFAULT 0;
