-- The business rules as numbered, immutable versions.
--
-- rules_versions: one row per version of the rules (tag words and thresholds), numbered 1, 2, ...
-- without gaps (SetRules serialises the writers), never updated nor deleted. When there is none,
-- the first worker or starter that needs the rules creates version 1 from its TXFLOW_* settings
-- (CurrentRules). A run reads the current version once, when its ingestion starts, and uses it
-- for all its chunks, whichever worker runs them.
CREATE TABLE rules_versions (
    version          integer PRIMARY KEY CHECK (version > 0),
    tag_words        text[] NOT NULL,
    large_sale_above numeric NOT NULL,
    expense_below    numeric NOT NULL,
    amount_limit     numeric NOT NULL,
    note             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- runs.rules_version: the version the run applies, recorded when its ingestion starts; NULL for
-- runs ingested before versions existed.
ALTER TABLE runs ADD COLUMN rules_version integer REFERENCES rules_versions (version);

-- The version each result was computed with; NULL for results computed before versions existed
-- (or by a chunk of a run started before them). No foreign key: results are written by COPY in
-- bulk, and the version comes from the run, which has one.
ALTER TABLE tags ADD COLUMN rules_version integer;
ALTER TABLE annotations ADD COLUMN rules_version integer;
