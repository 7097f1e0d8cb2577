-- Reclassification: stored transactions computed again under a version of the rules, shown as a
-- diff, and applied once approved.
--
-- reclassifications: one row per reclassification (its workflow id), written by the plan with
-- the version of the rules it targets and how its dry run is split over the pages of
-- transactions, so that a retried plan keeps what its first attempt recorded. status is the
-- outcome once it ended (applied, rejected, expired, unchanged, failed), NULL while it goes on:
-- a plan refuses to start while another reclassification has not ended.
CREATE TABLE reclassifications (
    reclass_id    text PRIMARY KEY,
    account       text,             -- NULL: every account
    date_from     date,
    date_to       date,
    rules_version integer NOT NULL REFERENCES rules_versions (version),
    -- pages: the size of transactions in pages when planned; chunk_pages: the pages each dry-run
    -- chunk reads (the last chunk reads on to the end of the table).
    pages         bigint NOT NULL DEFAULT 0,
    chunk_pages   bigint NOT NULL DEFAULT 1,
    status        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

-- reclassify_diffs: the transactions whose result the target rules change, with the old and new
-- values (NULL: none), keyed by the transaction's key, with the number of the dry-run chunk
-- that found it: applying and publishing go chunk by chunk. The dry run does not copy the
-- transactions: it reads them where they are, a range of pages per chunk. old_rules_version is
-- the version that computed the stored result (NULL: none recorded). applied is set in the same
-- database transaction as the new results, so a chunk applied twice changes nothing the second
-- time.
CREATE TABLE reclassify_diffs (
    reclass_id        text NOT NULL,
    txn_key           bigint NOT NULL,
    chunk             integer NOT NULL,
    account           text NOT NULL,
    id                text NOT NULL,
    old_tag           text,
    new_tag           text,
    old_annotation    text,
    new_annotation    text,
    old_error         text,
    new_error         text,
    old_rules_version integer,
    applied           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (reclass_id, txn_key)
);
CREATE INDEX reclassify_diffs_chunk ON reclassify_diffs (reclass_id, chunk);
