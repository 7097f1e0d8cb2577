-- The counts per tag and per annotation of each chunk of a run's lines, as the run's report page
-- shows them: each Tag or Annotate chunk counts its lines' results once it wrote them (from the
-- rows just written), so that Dump adds up a few rows instead of scanning the run's results
-- again. result is 'tags' or 'annotations'; counts maps each non-null value to its lines. A row
-- is valid for the ingestion it was computed for (runs.num). The page falls back to a scan when
-- the chunks of a result do not cover the run's lines.
CREATE TABLE run_report_chunks (
    run_id   text REFERENCES runs (run_id) ON DELETE CASCADE,
    result   text,
    from_seq bigint,
    to_seq   bigint NOT NULL,
    num      bigint NOT NULL,
    counts   jsonb NOT NULL,
    PRIMARY KEY (run_id, result, from_seq)
);
