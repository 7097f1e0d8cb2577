package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A run's report figures (RunReport) cost scans of all its lines. The pipeline computes those of
// its lines (RunReportLines) while its lines are tagged and annotated and keeps them
// (SaveRunReportLines, table run_report_lines); the rest while it writes the run's outputs, when
// the results are final, and keeps the whole (SaveRunReport, table run_reports) for the report
// page written at the end of the run (CachedRunReport).

// SaveRunReport keeps r, the figures of run r.RunID computed with opts, for the run's current
// ingestion, replacing what was kept before. It returns ErrRunNotFound (wrapped) for a run that
// does not exist, and the wrapped connection or SQL error.
func (db *DB) SaveRunReport(ctx context.Context, r RunReport, opts ReportOptions) error {
	figures, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report figures of run %s: %w", r.RunID, err)
	}
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO run_reports (run_id, num, omit_tags, omit_annotations, figures)
		SELECT run_id, num, $2, $3, $4 FROM runs WHERE run_id = $1
		ON CONFLICT (run_id) DO UPDATE SET num = EXCLUDED.num, omit_tags = EXCLUDED.omit_tags,
			omit_annotations = EXCLUDED.omit_annotations, figures = EXCLUDED.figures, computed_at = now()`,
		r.RunID, opts.OmitTags, opts.OmitAnnotations, figures)
	if err != nil {
		return db.wrap("save report figures of run "+r.RunID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save report figures of run %s: %w", r.RunID, ErrRunNotFound)
	}
	return nil
}

// CachedRunReport returns the figures SaveRunReport kept for the run's current ingestion with
// opts, and false when there are none (never saved, saved with other options, or for an
// ingestion since started over). It returns the wrapped connection or SQL error.
func (db *DB) CachedRunReport(ctx context.Context, runID string, opts ReportOptions) (RunReport, bool, error) {
	var figures []byte
	err := db.pool.QueryRow(ctx, `
		SELECT c.figures FROM run_reports c JOIN runs r ON r.run_id = c.run_id AND r.num = c.num
		WHERE c.run_id = $1 AND c.omit_tags = $2 AND c.omit_annotations = $3`,
		runID, opts.OmitTags, opts.OmitAnnotations).Scan(&figures)
	if errors.Is(err, pgx.ErrNoRows) {
		return RunReport{}, false, nil
	}
	if err != nil {
		return RunReport{}, false, db.wrap("read report figures of run "+runID, err)
	}
	var r RunReport
	if err := json.Unmarshal(figures, &r); err != nil {
		return RunReport{}, false, fmt.Errorf("decode report figures of run %s: %w", runID, err)
	}
	return r, true, nil
}

// SaveRunReportLines keeps r, the figures RunReportLines computed for run r.RunID, for the run's
// current ingestion. Errors as SaveRunReport's.
func (db *DB) SaveRunReportLines(ctx context.Context, r RunReport) error {
	figures, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report figures of the lines of run %s: %w", r.RunID, err)
	}
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO run_report_lines (run_id, num, figures)
		SELECT run_id, num, $2 FROM runs WHERE run_id = $1
		ON CONFLICT (run_id) DO UPDATE SET num = EXCLUDED.num, figures = EXCLUDED.figures, computed_at = now()`,
		r.RunID, figures)
	if err != nil {
		return db.wrap("save report figures of the lines of run "+r.RunID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save report figures of the lines of run %s: %w", r.RunID, ErrRunNotFound)
	}
	return nil
}

// CachedRunReportLines returns the figures SaveRunReportLines kept for the run's current
// ingestion, and false when there are none. It returns the wrapped connection or SQL error.
func (db *DB) CachedRunReportLines(ctx context.Context, runID string) (RunReport, bool, error) {
	var figures []byte
	err := db.pool.QueryRow(ctx, `
		SELECT c.figures FROM run_report_lines c JOIN runs r ON r.run_id = c.run_id AND r.num = c.num
		WHERE c.run_id = $1`, runID).Scan(&figures)
	if errors.Is(err, pgx.ErrNoRows) {
		return RunReport{}, false, nil
	}
	if err != nil {
		return RunReport{}, false, db.wrap("read report figures of the lines of run "+runID, err)
	}
	var r RunReport
	if err := json.Unmarshal(figures, &r); err != nil {
		return RunReport{}, false, fmt.Errorf("decode report figures of the lines of run %s: %w", runID, err)
	}
	return r, true, nil
}
