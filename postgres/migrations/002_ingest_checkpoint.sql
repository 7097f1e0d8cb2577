-- Ingestion checkpoints: a retried Ingest resumes after the last committed batch instead of
-- starting over, and a run settled before its worker died reports the same totals again.
ALTER TABLE runs
    ADD COLUMN records_loaded bigint NOT NULL DEFAULT 0, -- data records (accepted + rejected) committed
    ADD COLUMN next_seq       bigint NOT NULL DEFAULT 1, -- seq of the next accepted record
    ADD COLUMN rows_read      bigint,                    -- set by FinishIngest
    ADD COLUMN new_count      bigint,                    -- transactions the settlement inserted
    -- every line's transaction was inserted by this run's settlement: no result can exist for
    -- them but from this run's own chunks, so chunks need not look for existing results
    ADD COLUMN all_new        boolean NOT NULL DEFAULT false;
