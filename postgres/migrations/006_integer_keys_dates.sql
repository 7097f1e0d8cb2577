-- Integer keys for results, and dates.
--
-- Every transaction gets a bigint key; tags and annotations are keyed by it instead of
-- (account, transaction_id), and each run line carries the key of its transaction, so that
-- results are written into narrow tables with an integer primary key and the export joins on
-- integers. A new transaction's key is the packed key of the line that stored it,
-- runs.num * 2^32 + seq, known when the line is loaded; runs.num is drawn afresh each time a
-- run's ingestion starts over (BeginIngest), so no two lines ever give the same key. A line
-- whose transaction already existed gets that transaction's key when the run settles.
-- Transactions stored before this migration get negative keys, which no line gives.
CREATE SEQUENCE runs_num_seq AS bigint;
ALTER TABLE runs
    ADD COLUMN num bigint,
    ADD COLUMN has_date_column boolean NOT NULL DEFAULT false;
UPDATE runs SET num = nextval('runs_num_seq');
ALTER TABLE runs ALTER COLUMN num SET NOT NULL, ADD CONSTRAINT runs_num_key UNIQUE (num);
ALTER SEQUENCE runs_num_seq OWNED BY runs.num;

-- date: the date of the line (and of the transaction, as first stored), NULL when the file has
-- no date column.
ALTER TABLE transactions ADD COLUMN key bigint, ADD COLUMN date date;
UPDATE transactions t SET key = -k.n
FROM (SELECT account, id, row_number() OVER (ORDER BY account, id) AS n FROM transactions) k
WHERE k.account = t.account AND k.id = t.id;
ALTER TABLE transactions ALTER COLUMN key SET NOT NULL;

ALTER TABLE run_lines ADD COLUMN txn_key bigint, ADD COLUMN date date;
UPDATE run_lines rl SET txn_key = t.key
FROM transactions t
WHERE t.account = rl.account AND t.id = rl.id;
-- Lines of a run not settled yet whose transaction does not exist: the key their line gives.
UPDATE run_lines rl SET txn_key = r.num * 4294967296 + rl.seq
FROM runs r
WHERE r.run_id = rl.run_id AND rl.txn_key IS NULL;
ALTER TABLE run_lines ALTER COLUMN txn_key SET NOT NULL;

-- Results keyed by the transaction's key. tags.txn_key and annotations.txn_key always name a
-- transaction's key but carry no foreign key (see 001_init.sql).
CREATE TABLE tags_by_key (
    txn_key   bigint PRIMARY KEY,
    tag       text,
    run_id    text NOT NULL,
    tagged_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tags_by_key (txn_key, tag, run_id, tagged_at)
SELECT t.key, g.tag, g.run_id, g.tagged_at
FROM tags g JOIN transactions t ON t.account = g.account AND t.id = g.transaction_id;
DROP TABLE tags;
ALTER TABLE tags_by_key RENAME TO tags;
ALTER INDEX tags_by_key_pkey RENAME TO tags_pkey;

CREATE TABLE annotations_by_key (
    txn_key      bigint PRIMARY KEY,
    annotation   text,
    run_id       text NOT NULL,
    annotated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO annotations_by_key (txn_key, annotation, run_id, annotated_at)
SELECT t.key, a.annotation, a.run_id, a.annotated_at
FROM annotations a JOIN transactions t ON t.account = a.account AND t.id = a.transaction_id;
DROP TABLE annotations;
ALTER TABLE annotations_by_key RENAME TO annotations;
ALTER INDEX annotations_by_key_pkey RENAME TO annotations_pkey;
