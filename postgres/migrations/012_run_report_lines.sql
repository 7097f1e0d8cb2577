-- The figures of a run's report page that its lines give (postgres.RunReportLines: counts,
-- histogram, largest amounts, reasons): final once the run is settled, they are computed while
-- its lines are tagged and annotated, so that what is left when its outputs are written is only
-- what its results give. A row is valid for the ingestion it was computed for (runs.num).
CREATE TABLE run_report_lines (
    run_id      text PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    num         bigint NOT NULL,
    figures     jsonb NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
