package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/report"
)

// ReportFile is the run's report page, written beside summary.json.
const ReportFile = "report.html"

// MetricRowsRejectedByReason counts a run's rejected rows per reason (tag "reason"), once its
// report is written: exposed as txflow_rows_rejected_by_reason_total{reason=…}. The reasons are
// the few of txn (invalid_amount, duplicate_id, …), so the series stay few.
const MetricRowsRejectedByReason = "txflow_rows_rejected_by_reason"

// ReportStore computes the figures of a run's report page (*postgres.DB in the worker).
type ReportStore interface {
	RunReport(ctx context.Context, runID string, opts postgres.ReportOptions) (postgres.RunReport, error)
}

var _ ReportStore = (*postgres.DB)(nil)

// ReportCache keeps a run's report figures (*postgres.DB in the worker): Dump computes them while
// it writes the output, once the run's results are final, and WriteSummary reads them back instead
// of scanning the run's lines again at the end of the run. A ReportStore that is not one computes
// the figures in WriteSummary.
type ReportCache interface {
	SaveRunReport(ctx context.Context, r postgres.RunReport, opts postgres.ReportOptions) error
	CachedRunReport(ctx context.Context, runID string, opts postgres.ReportOptions) (postgres.RunReport, bool, error)
}

var _ ReportCache = (*postgres.DB)(nil)

// ReportLinesCache keeps the figures of a run's report that its lines give (*postgres.DB in the
// worker): ReportErrors computes them, with ReportInput.Figures, while the run's lines are tagged
// and annotated, and Dump computes only the rest.
type ReportLinesCache interface {
	RunReportLines(ctx context.Context, runID string) (postgres.RunReport, error)
	SaveRunReportLines(ctx context.Context, r postgres.RunReport) error
	CachedRunReportLines(ctx context.Context, runID string) (postgres.RunReport, bool, error)
	RunReportWith(ctx context.Context, runID string, opts postgres.ReportOptions, lines postgres.RunReport) (postgres.RunReport, error)
}

var _ ReportLinesCache = (*postgres.DB)(nil)

// prepareReportLines computes the figures of the run's report that its lines give and keeps them
// (a.Reports, when it is a ReportLinesCache); ReportErrors runs it beside the error report. A
// failure is only logged: Dump then computes them itself.
func (a *Activities) prepareReportLines(ctx context.Context, runID string) {
	cache, ok := a.Reports.(ReportLinesCache)
	if !ok {
		return
	}
	r, err := cache.RunReportLines(ctx, runID)
	if err == nil {
		err = cache.SaveRunReportLines(ctx, r)
	}
	if err != nil && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("report figures of the lines not prepared: computed with the rest", "run_id", runID, "error", err)
	}
}

// prepareReport computes the run's report figures with opts and keeps them (a.Reports, when it is
// a ReportCache); Dump runs it beside the output's COPY. Those of the run's lines are read from
// what prepareReportLines kept, when it did. A failure is only logged: WriteSummary then computes
// the figures itself.
func (a *Activities) prepareReport(ctx context.Context, runID string, opts postgres.ReportOptions) {
	cache, ok := a.Reports.(ReportCache)
	if !ok {
		return
	}
	var r postgres.RunReport
	var err error
	kept := false
	if lc, ok := a.Reports.(ReportLinesCache); ok {
		var lines postgres.RunReport
		if lines, kept, err = lc.CachedRunReportLines(ctx, runID); err == nil && kept {
			r, err = lc.RunReportWith(ctx, runID, opts, lines)
		}
	}
	if !kept {
		r, err = a.Reports.RunReport(ctx, runID, opts)
	}
	if err == nil {
		err = cache.SaveRunReport(ctx, r, opts)
	}
	if err != nil && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("report figures not prepared: computed when the report is written", "run_id", runID, "error", err)
	}
}

// reportSummary is what the report reads of summary.json (workflows.Summary, which this package
// cannot import).
type reportSummary struct {
	RunID        string     `json:"run_id"`
	File         string     `json:"file"`
	Account      string     `json:"account"`
	RulesVersion int        `json:"rules_version"`
	Status       string     `json:"status"`
	Error        string     `json:"error"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at"`
	Counts
	Stages []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"stages"`
}

// stageFailed returns the error of the stage name when it did not complete, "" otherwise.
func (s reportSummary) stageFailed(name string) (string, bool) {
	for _, st := range s.Stages {
		if st.Name == name && st.Status != "completed" {
			msg := st.Status
			if st.Error != "" {
				msg += ": " + st.Error
			}
			return msg, true
		}
	}
	return "", false
}

// RewriteReportInput names the run whose report.html to write again.
type RewriteReportInput struct {
	RunID string
}

// RewriteReport writes report.html again from the run's summary.json and the store, and returns
// its path; the WriteReport workflow runs it for `starter report`. It claims nothing: the
// directory keeps the files of the attempt that wrote them.
//
// It returns a non-retryable ErrTypeBadInput error when the run has no output directory or no
// summary.json (not finished, or unknown to this worker's output root).
func (a *Activities) RewriteReport(ctx context.Context, in RewriteReportInput) (string, error) {
	path, err := OutputDir(a.OutputRoot, in.RunID)
	if err != nil {
		return "", typedError(err, false)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		err := fmt.Errorf("run %s has no output directory under the output root %s", in.RunID, a.OutputRoot)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
	}
	dir, err := OpenRunDir(a.OutputRoot, in.RunID)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	summary, err := dir.ReadFile(SummaryFile)
	if errors.Is(err, os.ErrNotExist) {
		err := fmt.Errorf("run %s has no %s: it has not finished, or failed before its outputs", in.RunID, SummaryFile)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
	}
	if err != nil {
		return "", fmt.Errorf("read summary: %w", confined(err))
	}
	return a.writeReport(ctx, dir, summary, false)
}

// writeReport renders report.html from the summary and the store's figures into dir and returns
// its path.
//
// An error reading the store or writing the file is returned, for a retry of the activity, as
// for any output: summary.json is written first and again identically by the retry. The page
// itself cannot fail on data (html/template escapes every text): a rendering error would be a
// defect of the template, which no retry fixes, so it is logged and the run goes on without
// report.html ("" returned); `starter report` writes it once fixed. With atEnd (WriteSummary, as
// the run ends) the figures Dump kept are used when there are (ReportCache), and the run's
// rejected rows per reason are counted in MetricRowsRejectedByReason; RewriteReport computes the
// figures afresh (after a reclassification, say).
func (a *Activities) writeReport(ctx context.Context, dir *RunDir, summary []byte, atEnd bool) (string, error) {
	var s reportSummary
	if err := json.Unmarshal(summary, &s); err != nil {
		err := fmt.Errorf("summary is not a run summary: %w", err)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
	}
	d := a.reportData(ctx, s)
	if a.Reports != nil {
		var opts postgres.ReportOptions
		_, opts.OmitTags = s.stageFailed("tag")
		_, opts.OmitAnnotations = s.stageFailed("annotate")
		var r postgres.RunReport
		var err error
		kept := false
		if cache, ok := a.Reports.(ReportCache); ok && atEnd {
			if r, kept, err = cache.CachedRunReport(ctx, s.RunID, opts); err != nil {
				kept = false // computed below
			}
		}
		if !kept {
			r, err = a.Reports.RunReport(ctx, s.RunID, opts)
		}
		switch {
		case errors.Is(err, postgres.ErrRunNotFound):
			d.Note = "The database no longer holds this run (its account was purged?): only the summary's counts are shown."
		case err != nil:
			return "", fmt.Errorf("report figures: %w", err)
		default:
			fillReport(&d, r, s)
			if atEnd && activity.IsActivity(ctx) {
				h := activity.GetMetricsHandler(ctx)
				for _, rc := range r.Reasons {
					if rc.Kind == postgres.KindRejected {
						h.WithTags(map[string]string{"reason": rc.Reason}).Counter(MetricRowsRejectedByReason).Inc(rc.Count)
					}
				}
			}
		}
	} else {
		d.Note = "No database figures: this worker has no report store."
	}
	var page bytes.Buffer
	if err := report.Render(&page, d); err != nil {
		if activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Error("report not written", "run_id", s.RunID, "error", err)
		}
		return "", nil
	}
	if err := writeBytes(dir.Root, ReportFile, page.Bytes()); err != nil {
		return "", fmt.Errorf("write report: %w", typedError(err, false))
	}
	return dir.path(ReportFile), nil
}

// reportData is the page's header and the summary's counts, before the store's figures.
func (a *Activities) reportData(ctx context.Context, s reportSummary) report.Data {
	d := report.Data{
		RunID: s.RunID, File: s.File, Account: s.Account, RulesVersion: s.RulesVersion,
		Status: s.Status, Error: s.Error, StartedAt: s.StartedAt,
		Counts: reportCounts(s.RowsRead, s.Ingested, s.New, s.Rejected, s.InError),
	}
	if s.FinishedAt != nil {
		d.FinishedAt = *s.FinishedAt
	}
	if a.UIURL != "" && activity.IsActivity(ctx) {
		ns := activity.GetInfo(ctx).WorkflowNamespace
		d.WebUI = fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimRight(a.UIURL, "/"), url.PathEscape(ns), url.PathEscape(s.RunID))
	}
	return d
}

func reportCounts(read, accepted, fresh, rejected, inError int64) []report.Count {
	return []report.Count{
		{Key: "rows_read", Name: "rows read", Value: read},
		{Key: "accepted", Name: "accepted", Value: accepted},
		{Key: "new", Name: "new", Value: fresh},
		{Key: "rejected", Name: "rejected", Value: rejected},
		{Key: "in_error", Name: "in error", Value: inError},
	}
}

// fillReport puts the store's figures on the page.
func fillReport(d *report.Data, r postgres.RunReport, s reportSummary) {
	d.Counts = reportCounts(r.RowsRead, r.Accepted, r.New, r.Rejected, r.InError)
	labels := func(ls []postgres.LabelCount) []report.Count {
		out := make([]report.Count, len(ls))
		for i, l := range ls {
			out[i] = report.Count{Key: l.Label, Name: l.Label, Value: l.Count}
		}
		return out
	}
	d.Tags, d.Annotations = labels(r.Tags), labels(r.Annotations)
	if msg, failed := s.stageFailed("tag"); failed {
		d.TagsNote = "The tag stage did not complete (" + msg + "): the output's tag column is empty."
	}
	if msg, failed := s.stageFailed("annotate"); failed {
		d.AnnotationsNote = "The annotate stage did not complete (" + msg + "): the output's annotation column is empty."
	}
	lines := func(ls []postgres.ReportLine) []report.Line {
		out := make([]report.Line, len(ls))
		for i, l := range ls {
			out[i] = report.Line{Line: l.Line, ID: l.ID, Amount: l.Amount, Wording: l.Wording, Detail: l.Detail}
		}
		return out
	}
	for _, rc := range r.Reasons {
		d.Reasons = append(d.Reasons, report.Reason{Kind: rc.Kind, Name: rc.Reason, Count: rc.Count, Examples: lines(rc.Examples)})
	}
	// The histogram: one row per bucket from the smallest to the largest holding a line.
	lo, hi := -1, -1
	for _, b := range r.Amounts {
		if lo < 0 || b.Bucket < lo {
			lo = b.Bucket
		}
		hi = max(hi, b.Bucket)
	}
	if lo >= 0 {
		rows := make([]report.Bucket, hi-lo+1)
		for i := range rows {
			k := lo + i
			if k > 0 {
				rows[i].Low = postgres.AmountBuckets[k-1]
			} else {
				rows[i].Low = "0"
			}
			if k < len(postgres.AmountBuckets) {
				rows[i].High = postgres.AmountBuckets[k]
			}
		}
		for _, b := range r.Amounts {
			if b.Sign < 0 {
				rows[b.Bucket-lo].Debits = b.Count
			} else {
				rows[b.Bucket-lo].Credits = b.Count
			}
		}
		d.Amounts = rows
	}
	d.ZeroAmounts = r.Zero
	d.LargestDebits, d.LargestCredits = lines(r.LargestDebits), lines(r.LargestCredits)
	h := r.History
	d.History = report.History{Runs: h.Runs, Window: postgres.HistoryRuns, MinRuns: postgres.HistoryMinRuns, Factor: postgres.FarOff,
		Metrics: []report.Comparison{
			{Key: "rows_read", Name: "rows read", Value: r.RowsRead, Median: h.MedianRows, Flag: h.RowsFlag},
			{Key: "rejected", Name: "rejected", Value: r.Rejected, Median: h.MedianRejected, Flag: h.RejectedFlag},
		}}
}
