-- Reclassification: stored transactions computed again under a version of the rules, shown as a
-- diff, and applied once approved.
--
-- reclassifications: one row per reclassification (its workflow id), written by the plan with
-- the version of the rules it targets, so that a retried plan keeps the version and the snapshot
-- its first attempt recorded. status is the outcome once it ended (applied, rejected, expired,
-- unchanged), NULL while it goes on.
CREATE TABLE reclassifications (
    reclass_id    text PRIMARY KEY,
    account       text,             -- NULL: every account
    date_from     date,
    date_to       date,
    rules_version integer NOT NULL REFERENCES rules_versions (version),
    items         bigint NOT NULL DEFAULT 0,
    status        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

-- reclassify_items: the snapshot of the target set, numbered 1..items so that the dry run works
-- on ranges of seq like a run's chunks: each transaction with what its result depends on
-- (wording, amount) and its stored result (tag, annotation, error, and the version of the rules
-- that computed it), copied by one set-based INSERT ... SELECT, so that the dry run reads ranges of
-- one table in order instead of probing three tables per transaction. It carries (account, id)
-- to reach the transaction by its primary key (transactions has no index on key). Deleted once
-- the reclassification ended: the diff is its record.
CREATE TABLE reclassify_items (
    reclass_id    text NOT NULL,
    seq           bigint NOT NULL,
    txn_key       bigint NOT NULL,
    account       text NOT NULL,
    id            text NOT NULL,
    wording       text NOT NULL,
    amount        numeric NOT NULL,
    error         text,
    tag           text,
    annotation    text,
    rules_version integer,
    PRIMARY KEY (reclass_id, seq)
);

-- reclassify_diffs: the items whose result the target rules change, with the old and new
-- values (NULL: none), keyed by the item's seq so that applying and publishing work on the same
-- ranges. old_rules_version is the version that computed the stored result (NULL: none
-- recorded). applied is set in the same database transaction as the new results, so a chunk
-- applied twice changes nothing the second time.
CREATE TABLE reclassify_diffs (
    reclass_id        text NOT NULL,
    seq               bigint NOT NULL,
    txn_key           bigint NOT NULL,
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
    PRIMARY KEY (reclass_id, seq)
);
