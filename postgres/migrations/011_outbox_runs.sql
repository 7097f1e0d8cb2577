-- Delivery of a run's new transactions by range of lines: one row per run instead of one outbox
-- row per transaction.
--
-- outbox_runs: the run's new transactions, its lines 1..max_seq whose run_lines.txn_key was made
-- by the ingestion numbered num (txn_key >> 32 = num: the transaction was inserted by that
-- ingestion of the run), are still to publish, as version 1. FinishIngest writes the row in the
-- same database transaction as the transactions it inserts, when delivery is on; the message's
-- fields are read at publish time from the run's line, its tag and its annotation, as for the
-- outbox. created_at is when the run settled. The row and the run's outbox_acked rows are
-- deleted once every chunk of the run is acknowledged.
CREATE TABLE outbox_runs (
    run_id     text PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    num        bigint NOT NULL,
    max_seq    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- outbox_acked: the chunk of the run's lines starting at from_seq has had every message of its
-- lines before next_seq acknowledged by the broker; a retried Publish of the chunk starts at
-- next_seq. next_seq only grows. The chunks partition 1..max_seq: when the rows cover it all,
-- the run is delivered.
CREATE TABLE outbox_acked (
    run_id   text,
    from_seq bigint,
    next_seq bigint NOT NULL,
    PRIMARY KEY (run_id, from_seq)
);
