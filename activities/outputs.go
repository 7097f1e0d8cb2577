package activities

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/postgres"
)

// Names of the files a run writes under <output root>/<run id>/.
const (
	OutputFile      = "output_transactions.csv"
	ErrorReportFile = "error_report.csv"
	SummaryFile     = "summary.json"
)

// FileResult names a file an activity wrote and counts its data rows.
type FileResult struct {
	Path string
	Rows int64
}

// ReportInput names the run whose error report to write.
type ReportInput struct {
	RunID string
}

// ReportErrors writes error_report.csv: every rejected row and every row in error of the run,
// with its physical line and reason, in line order.
func (a *Activities) ReportErrors(ctx context.Context, in ReportInput) (FileResult, error) {
	defer keepAlive(ctx, nil)()
	path, err := a.outputPath(in.RunID, ErrorReportFile)
	if err != nil {
		return FileResult{}, err
	}
	rows, err := writeFileAtomic(path, func(w io.Writer) (int64, error) {
		return a.DB.WriteErrorReport(ctx, in.RunID, w)
	})
	if err != nil {
		return FileResult{}, fmt.Errorf("write error report: %w", err)
	}
	return FileResult{Path: path, Rows: rows}, nil
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
	path, err := a.outputPath(in.RunID, OutputFile)
	if err != nil {
		return DumpResult{}, err
	}
	opts := postgres.OutputOptions{OmitTags: in.OmitTags, OmitAnnotations: in.OmitAnnotations}
	var counted outputCounts
	rows, err := writeFileAtomic(path, func(w io.Writer) (int64, error) {
		// The file is counted as it streams out: a second pass over the joined tables would
		// cost as much as the export itself.
		count := newOutputCounter()
		n, err := a.DB.WriteOutput(ctx, in.RunID, opts, io.MultiWriter(w, count))
		counted, err = count.close(err)
		return n, err
	})
	if err != nil {
		return DumpResult{}, fmt.Errorf("write output: %w", err)
	}
	return DumpResult{Path: path, Rows: rows, Tagged: counted.tagged, Annotated: counted.annotated}, nil
}

type outputCounts struct{ tagged, annotated int64 }

// outputCounter reads output_transactions.csv as it is written and counts the rows with a tag
// and with an annotation (columns 4 and 5).
type outputCounter struct {
	*io.PipeWriter
	done chan struct{}
	n    outputCounts
	err  error
}

func newOutputCounter() *outputCounter {
	pr, pw := io.Pipe()
	c := &outputCounter{PipeWriter: pw, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		r := csv.NewReader(pr)
		r.ReuseRecord = true
		r.FieldsPerRecord = 6
		header := true
		for {
			rec, err := r.Read()
			if err == io.EOF {
				return
			}
			if err != nil {
				c.err = fmt.Errorf("count output rows: %w", err)
				pr.CloseWithError(c.err) // unblocks the writer
				return
			}
			if header {
				header = false
				continue
			}
			if rec[3] != "" {
				c.n.tagged++
			}
			if rec[4] != "" {
				c.n.annotated++
			}
		}
	}()
	return c
}

// close ends the stream after the export returned writeErr and returns the counts.
func (c *outputCounter) close(writeErr error) (outputCounts, error) {
	c.PipeWriter.CloseWithError(writeErr)
	<-c.done
	if writeErr != nil {
		return outputCounts{}, writeErr
	}
	return c.n, c.err
}

// SummaryInput carries the run's summary, already encoded as JSON by the workflow.
type SummaryInput struct {
	RunID   string
	Summary json.RawMessage
}

// WriteSummary writes summary.json and returns its path.
func (a *Activities) WriteSummary(ctx context.Context, in SummaryInput) (string, error) {
	path, err := a.outputPath(in.RunID, SummaryFile)
	if err != nil {
		return "", err
	}
	if !json.Valid(in.Summary) {
		err := fmt.Errorf("summary of %s is not valid JSON", in.RunID)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	_, err = writeFileAtomic(path, func(w io.Writer) (int64, error) {
		n, err := w.Write(append(in.Summary, '\n'))
		return int64(n), err
	})
	if err != nil {
		return "", fmt.Errorf("write summary: %w", err)
	}
	return path, nil
}

// outputPath returns <output root>/<run id>/<name>, creating the run's directory.
func (a *Activities) outputPath(runID, name string) (string, error) {
	dir, err := OutputDir(a.OutputRoot, runID)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create output directory: %w", err)
	}
	return filepath.Join(dir, name), nil
}

// writeFileAtomic writes path through a temporary file in the same directory, synced and renamed
// into place, so that readers never see a partial file, even when the worker dies mid-write.
func writeFileAtomic(path string, write func(io.Writer) (int64, error)) (n int64, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if n, err = write(bw); err != nil {
		return 0, err
	}
	if err = bw.Flush(); err != nil {
		return 0, err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return 0, err
	}
	if err = tmp.Sync(); err != nil {
		return 0, err
	}
	if err = tmp.Close(); err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), path)
}
