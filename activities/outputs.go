package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/postgres"
)

// Names of the files a run writes under <output root>/<run id>/.
const (
	OutputFile      = "output_transactions.csv"
	ErrorReportFile = "error_report.csv"
	SummaryFile     = "summary.json"
	// AttemptFile, hidden, names the attempt (Temporal run id) whose files the directory holds.
	AttemptFile = ".txflow-attempt"
)

// FileResult names a file an activity wrote and counts its data rows.
type FileResult struct {
	Path string
	Rows int64
}

// ReportInput names the run whose error report to write.
type ReportInput struct {
	RunID string
	// Figures also computes and keeps the figures of the run's report page that its lines give
	// (ReportLinesCache), beside the error report: ProcessFile runs ReportErrors alongside Tag
	// and Annotate, so that Dump has only the results' figures left to compute.
	Figures bool `json:",omitempty"`
}

// ReportErrors writes error_report.csv: every rejected row and every row in error of the run,
// with its physical line and reason, in line order.
func (a *Activities) ReportErrors(ctx context.Context, in ReportInput) (FileResult, error) {
	defer keepAlive(ctx, nil)()
	dir, err := a.runDir(ctx, in.RunID)
	if err != nil {
		return FileResult{}, err
	}
	defer dir.Close()
	if in.Figures {
		prepared := make(chan struct{})
		go func() {
			defer close(prepared)
			a.prepareReportLines(ctx, in.RunID)
		}()
		defer func() { <-prepared }()
	}
	rows, err := writeFileAtomic(dir.Root, ErrorReportFile, func(w io.Writer) (int64, error) {
		return a.DB.WriteErrorReport(ctx, in.RunID, w)
	})
	if err != nil {
		return FileResult{}, fmt.Errorf("write error report: %w", typedError(err, false))
	}
	return FileResult{Path: dir.path(ErrorReportFile), Rows: rows}, nil
}

// DumpInput names the run to export. A stage that failed leaves its column empty.
type DumpInput struct {
	RunID           string
	OmitTags        bool
	OmitAnnotations bool
}

// DumpResult describes output_transactions.csv.
type DumpResult struct {
	Path      string
	Rows      int64
	Tagged    int64
	Annotated int64
}

// Dump writes output_transactions.csv: every accepted transaction of the run once, in input order,
// with its tag, annotation and error.
func (a *Activities) Dump(ctx context.Context, in DumpInput) (DumpResult, error) {
	defer keepAlive(ctx, nil)()
	dir, err := a.runDir(ctx, in.RunID)
	if err != nil {
		return DumpResult{}, err
	}
	defer dir.Close()
	opts := postgres.OutputOptions{OmitTags: in.OmitTags, OmitAnnotations: in.OmitAnnotations}
	// The report page's figures are computed beside the output, the run's results being final:
	// the page written at the end of the run reads them (ReportCache).
	prepared := make(chan struct{})
	go func() {
		defer close(prepared)
		a.prepareReport(ctx, in.RunID, postgres.ReportOptions{OmitTags: in.OmitTags, OmitAnnotations: in.OmitAnnotations})
	}()
	defer func() { <-prepared }()
	var counts postgres.OutputCounts
	_, err = writeFileAtomic(dir.Root, OutputFile, func(w io.Writer) (int64, error) {
		var err error
		counts, err = a.DB.WriteOutput(ctx, in.RunID, opts, w)
		return counts.Rows, err
	})
	if err != nil {
		return DumpResult{}, fmt.Errorf("write output: %w", typedError(err, false))
	}
	return DumpResult{Path: dir.path(OutputFile), Rows: counts.Rows, Tagged: counts.Tagged, Annotated: counts.Annotated}, nil
}

// SummaryInput carries the run's summary, already encoded as JSON by the workflow. It crosses
// Temporal compacted, whatever its layout.
type SummaryInput struct {
	RunID   string
	Summary json.RawMessage
}

// WriteSummary writes summary.json, indented like failure.json, then report.html (report.go),
// and returns the summary's path. They are the last files a run writes: a run directory with a
// summary.json holds the complete set of one attempt (report.html aside, when its template
// failed to render; see writeReport).
//
// It returns a non-retryable ErrTypeBadInput error when the summary is not valid JSON.
func (a *Activities) WriteSummary(ctx context.Context, in SummaryInput) (string, error) {
	var indented bytes.Buffer
	if err := json.Indent(&indented, in.Summary, "", "  "); err != nil {
		err := fmt.Errorf("summary of %s is not valid JSON: %w", in.RunID, err)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
	}
	indented.WriteByte('\n')
	dir, err := a.runDir(ctx, in.RunID)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	if err := writeBytes(dir.Root, SummaryFile, indented.Bytes()); err != nil {
		return "", fmt.Errorf("write summary: %w", typedError(err, false))
	}
	// Then the report page, from the summary and the store (report.go): an error reading the
	// store or writing the page fails the activity, for a retry, which writes both again.
	if _, err := a.writeReport(ctx, dir, indented.Bytes(), true); err != nil {
		return "", err
	}
	return dir.path(SummaryFile), nil
}

// runDir opens the run's output directory for the attempt of the calling workflow.
func (a *Activities) runDir(ctx context.Context, runID string) (*RunDir, error) {
	return openAttemptDir(ctx, a.OutputRoot, runID)
}

// openAttemptDir opens <root>/<id>/ and claims it for the attempt (the workflow run) of the
// calling activity.
func openAttemptDir(ctx context.Context, root, id string) (*RunDir, error) {
	attempt := ""
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	d, err := OpenRunDir(root, id)
	if err != nil {
		return nil, err
	}
	if err := d.Claim(attempt); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// RunDir is the output directory of one run, <output root>/<run id>/, opened through an
// *os.Root: whatever happens to the path after it was opened (a directory swapped for a
// symbolic link), files are written in this directory and nowhere else.
//
// A run id is run again (a failed run retried, a file processed anew): every attempt writes in
// the same directory. Claim keeps them apart: the directory holds the files of one attempt only.
type RunDir struct {
	*os.Root
	Dir string // the directory's absolute path, for the paths reported
}

// OpenRunDir creates, when needed, and opens <outputRoot>/<runID>. It returns a non-retryable
// ErrTypeBadPath error for a run id that is not a plain directory name or a directory that
// leaves the output root, ErrTypeConfig when no output root is configured; other errors (an
// output root that cannot be written) are plain, for a retry.
func OpenRunDir(outputRoot, runID string) (*RunDir, error) {
	d, err := openRunDir(outputRoot, runID)
	return d, typedError(err, false)
}

func openRunDir(outputRoot, runID string) (*RunDir, error) {
	dir, err := OutputDir(outputRoot, runID)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outputRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create output root: %w", err)
	}
	root, err := os.OpenRoot(outputRoot)
	if err != nil {
		return nil, fmt.Errorf("open output root: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(runID, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", confined(err))
	}
	if testHookOpened != nil {
		testHookOpened()
	}
	r, err := root.OpenRoot(runID)
	if err != nil {
		return nil, fmt.Errorf("open output directory: %w", confined(err))
	}
	return &RunDir{Root: r, Dir: dir}, nil
}

func (d *RunDir) path(name string) string { return filepath.Join(d.Dir, name) }

// Owner returns the attempt whose files the directory holds, "" when none is recorded.
func (d *RunDir) Owner() (string, error) {
	b, err := d.ReadFile(AttemptFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", AttemptFile, confined(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// Claim makes the directory attempt's (a Temporal run id) before it writes there. When the
// directory holds files of another attempt, or of none recorded, they are removed first, the
// summary and failure report first, the directory synced, and only then is attempt recorded:
// a crash in the middle leaves no file of the earlier attempt beside one of this one, and never
// a summary.json beside files it does not describe. An empty attempt claims nothing.
func (d *RunDir) Claim(attempt string) error {
	if attempt == "" {
		return nil
	}
	owner, err := d.Owner()
	if err != nil {
		return err
	}
	if owner == attempt {
		return nil
	}
	if err := d.clear(); err != nil {
		return err
	}
	return writeBytes(d.Root, AttemptFile, []byte(attempt+"\n"))
}

// clear removes the run's files and the temporary files of interrupted writes.
func (d *RunDir) clear() error {
	for _, name := range []string{SummaryFile, ReportFile, FailureFile, OutputFile, ErrorReportFile} {
		if err := d.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s of an earlier attempt: %w", name, confined(err))
		}
	}
	f, err := d.Open(".")
	if err != nil {
		return confined(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("list output directory: %w", err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			if err := d.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		}
	}
	return syncDir(d.Root, ".")
}
