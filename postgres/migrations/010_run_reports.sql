-- The figures of a run's report page, computed once the run's results are final (while its
-- outputs are written) so that the page written at the end of the run reads them instead of
-- scanning the run's lines again. A row is valid for the ingestion it was computed for
-- (runs.num: an ingestion started over makes it stale) and for the columns the run's output
-- left out (a failed Tag or Annotate).
CREATE TABLE run_reports (
    run_id           text PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    num              bigint NOT NULL,
    omit_tags        boolean NOT NULL,
    omit_annotations boolean NOT NULL,
    figures          jsonb NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT now()
);
