-- Delivery of results to a message broker through a transactional outbox.
--
-- transactions.result_version: the version of the transaction's stored result, 1 for a first
-- result; a message carries it, so that a consumer keeps the latest result of a transaction and
-- drops a message it has already applied. A constant default rewrites no table.
ALTER TABLE transactions ADD COLUMN result_version integer NOT NULL DEFAULT 1;

-- outbox: one row per message still to publish, written in the same database transaction as
-- what it describes (a reclassification's applied results; FinishIngest wrote one per new
-- transaction when delivery was on until migration 011, and still does for a run that has rows
-- here) and deleted once the broker acknowledged the message. The message's fields are read at
-- publish time from the run's line (joined on run_lines.txn_key), its tag and its annotation.
-- run_id is the run that wrote the row, and publishes it. The table holds only what is not delivered yet:
-- it stays small unless the broker is down, so counting a run's rows scans it.
CREATE TABLE outbox (
    txn_key    bigint,
    version    integer,
    run_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (txn_key, version)
);
