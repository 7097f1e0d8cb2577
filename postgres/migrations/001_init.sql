-- Runs: one row per ingested file.
CREATE TABLE runs (
    run_id      text PRIMARY KEY,
    file        text NOT NULL,
    sha256      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ingested_at timestamptz
);

-- Transactions: every distinct accepted id ever seen, with the content it
-- was first stored with.
CREATE TABLE transactions (
    id           text PRIMARY KEY,
    amount       numeric(18,2) NOT NULL,
    wording      text NOT NULL,
    first_run_id text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Run lines: one row per accepted record of a run, seq = 1..N in file order
-- (gaps appear where FinishIngest moved a line to rejected_rows).
CREATE TABLE run_lines (
    run_id     text NOT NULL,
    seq        bigint NOT NULL,
    line       bigint NOT NULL,
    id         text NOT NULL,
    amount     numeric(18,2) NOT NULL,
    raw_amount text NOT NULL,
    wording    text NOT NULL,
    error      text,
    PRIMARY KEY (run_id, seq)
);

-- Rejected rows of a run, as read from the file.
CREATE TABLE rejected_rows (
    run_id  text NOT NULL,
    line    bigint NOT NULL,
    id      text NOT NULL,
    amount  text NOT NULL,
    wording text NOT NULL,
    reason  text NOT NULL,
    detail  text NOT NULL,
    PRIMARY KEY (run_id, line)
);

-- A row means "tagged"; tag is NULL when the wording holds no tag word.
--
-- tags.transaction_id and annotations.transaction_id always name a row of
-- transactions, but carry no FOREIGN KEY: the per-row check trigger more than
-- doubles the cost of the bulk COPY that writes results. The store writes
-- results only for lines of runs that FinishIngest settled, whose ids are
-- all in transactions, and transactions are never deleted.
CREATE TABLE tags (
    transaction_id text PRIMARY KEY,
    tag            text,
    run_id         text NOT NULL,
    tagged_at      timestamptz NOT NULL DEFAULT now()
);

-- A row means "annotated"; annotation is NULL when no annotation applies.
CREATE TABLE annotations (
    transaction_id text PRIMARY KEY,
    annotation     text,
    run_id         text NOT NULL,
    annotated_at   timestamptz NOT NULL DEFAULT now()
);

-- txflow_safe_cell guards spreadsheet cells against formula injection: a
-- value starting with = + - @ TAB or CR gets a leading apostrophe. It must
-- stay identical to txn.SafeCell. NULL gives NULL. It is deliberately not
-- STRICT so that the planner inlines it (a STRICT function with a CASE body
-- is called through the SQL-function executor for every value).
CREATE FUNCTION txflow_safe_cell(s text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN left(s, 1) IN ('=', '+', '-', '@', E'\t', E'\r') THEN '''' || s ELSE s END $$;
