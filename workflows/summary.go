package workflows

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/activities"
)

// Summary is what a run did: its counts, outputs and the status of each stage. The progress
// query returns it while the run goes on; the run returns it and writes it as summary.json.
type Summary struct {
	RunID      string     `json:"run_id"`
	File       string     `json:"file"`
	SHA256     string     `json:"sha256,omitempty"`
	Status     string     `json:"status"` // running, completed or failed
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`

	RowsRead     int64 `json:"rows_read"`     // data records in the file
	Lines        int64 `json:"lines"`         // physical lines in the file
	SkippedLines int64 `json:"skipped_lines"` // lines neither header nor record: preamble, blank lines
	Ingested     int64 `json:"ingested"`      // records accepted for this run
	New          int64 `json:"new"`           // accepted records not stored before
	Rejected     int64 `json:"rejected"`      // records rejected, listed in the error report
	InError      int64 `json:"in_error"`      // accepted records in error (amount too high)
	Tagged       int64 `json:"tagged"`        // accepted records with a tag
	Annotated    int64 `json:"annotated"`     // accepted records with an annotation

	Outputs Outputs  `json:"outputs"`
	Stages  []*Stage `json:"stages"`

	// Hooks of the running workflow; nil outside it.
	now        func() time.Time
	onStageEnd func(*Stage)
	onProgress func()
}

// Outputs are the paths of the files a run writes, on the worker's file system.
type Outputs struct {
	Dir          string `json:"dir,omitempty"`
	Transactions string `json:"transactions,omitempty"`
	ErrorReport  string `json:"error_report,omitempty"`
	Summary      string `json:"summary,omitempty"`
}

// Stage is the status of one step of the pipeline.
type Stage struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
	Done     int64  `json:"done,omitempty"`     // lines processed (tag, annotate); records read (ingest)
	Total    int64  `json:"total,omitempty"`    // lines to process (tag, annotate); records of the file, once read (ingest)
	Computed int64  `json:"computed,omitempty"` // results newly computed (tag, annotate)
	// While Ingest runs: bytes of the file read, of the file, and its phase (IngestLoading,
	// IngestSettling), from the progress it reports.
	Bytes int64  `json:"bytes,omitempty"`
	Size  int64  `json:"size,omitempty"`
	Phase string `json:"phase,omitempty"`

	began time.Time // when it started running, for the stage duration metric
}

func newSummary(runID, file string, now time.Time) *Summary {
	s := &Summary{RunID: runID, File: file, Status: StatusRunning, StartedAt: now}
	for _, name := range []string{StageIngest, StageTag, StageAnnotate, StageReport, StageDump, StageSummary} {
		s.Stages = append(s.Stages, &Stage{Name: name, Status: StatusPending})
	}
	return s
}

func (s *Summary) stage(name string) *Stage {
	for _, st := range s.Stages {
		if st.Name == name {
			return st
		}
	}
	panic("unknown stage " + name)
}

func (s *Summary) start(name string) {
	st := s.stage(name)
	st.Status = StatusRunning
	if s.now != nil {
		st.began = s.now()
	}
	s.progressed()
}

func (s *Summary) complete(name string) {
	st := s.stage(name)
	st.Status = StatusCompleted
	s.ended(st)
}

func (s *Summary) fail(name string, err error) {
	st := s.stage(name)
	st.Status = StatusFailed
	st.Error = rootCause(err)
	s.ended(st)
}

func (s *Summary) ended(st *Stage) {
	if s.onStageEnd != nil {
		s.onStageEnd(st)
	}
}

func (s *Summary) progressed() {
	if s.onProgress != nil {
		s.onProgress()
	}
}

// FailedStage returns the name of the first stage that failed, or "" when none did.
func (s *Summary) FailedStage() string {
	for _, st := range s.Stages {
		if st.Status == StatusFailed {
			return st.Name
		}
	}
	return ""
}

// Markdown renders the summary for the Web UI's workflow details: status, counts and a table
// of the stages with the rows each has done.
func (s *Summary) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**File** `%s`  \n**Status** %s", s.File, s.Status)
	if s.Error != "" {
		fmt.Fprintf(&b, ": %s", s.Error)
	}
	b.WriteString("\n\n")
	if s.stage(StageIngest).Status == StatusCompleted {
		fmt.Fprintf(&b, "rows read %d, ingested %d (new %d), rejected %d, in error %d",
			s.RowsRead, s.Ingested, s.New, s.Rejected, s.InError)
		if s.stage(StageDump).Status == StatusCompleted {
			fmt.Fprintf(&b, ", tagged %d, annotated %d", s.Tagged, s.Annotated)
		}
		b.WriteString("\n\n")
	}
	b.WriteString("| stage | status | rows done |\n|---|---|---|\n")
	for _, st := range s.Stages {
		rows := ""
		switch {
		case st.Total > 0:
			rows = fmt.Sprintf("%d / %d (%d%%)", st.Done, st.Total, st.Done*100/st.Total)
		case st.Phase == activities.IngestSettling:
			rows = fmt.Sprintf("%d read, settling", st.Done)
		case st.Size > 0:
			rows = fmt.Sprintf("%d read (%d%% of the file)", st.Done, min(st.Bytes*100/st.Size, 100))
		}
		status := st.Status
		if st.Error != "" {
			status += ": " + strings.ReplaceAll(st.Error, "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", st.Name, status, rows)
	}
	if s.Outputs.Dir != "" {
		fmt.Fprintf(&b, "\n**Outputs** `%s`\n", s.Outputs.Dir)
	}
	return b.String()
}

// finish closes the summary: stages never reached are skipped, the status says whether any failed.
func (s *Summary) finish(now time.Time) {
	s.FinishedAt = &now
	s.Status = StatusCompleted
	for _, st := range s.Stages {
		switch st.Status {
		case StatusPending, StatusRunning:
			st.Status = StatusSkipped
		case StatusFailed:
			s.Status = StatusFailed
		}
	}
	if s.Status == StatusFailed {
		s.Error = s.failureText()
	}
}

// failureText says which stages failed and why, in one line.
func (s *Summary) failureText() string {
	var parts []string
	for _, st := range s.Stages {
		if st.Status == StatusFailed {
			parts = append(parts, fmt.Sprintf("%s failed: %s", st.Name, st.Error))
		}
	}
	return strings.Join(parts, "; ")
}

// ingestProgressed records a progress report of Ingest; reports that arrive when the stage no
// longer runs (a late one from an abandoned attempt) are dropped.
func (s *Summary) ingestProgressed(p activities.IngestProgress) {
	st := s.stage(StageIngest)
	if st.Status != StatusRunning {
		return
	}
	st.Done, st.Bytes, st.Size, st.Phase = p.Records, p.Bytes, p.Size, p.Phase
	s.RowsRead = p.Records
	s.progressed()
}

func (s *Summary) ingested(r activities.IngestResult) {
	st := s.stage(StageIngest)
	st.Done, st.Total = r.RowsRead, r.RowsRead
	st.Bytes, st.Size, st.Phase = 0, 0, ""
	s.SHA256 = r.SHA256
	s.RowsRead, s.Ingested, s.New, s.Rejected, s.InError = r.RowsRead, r.Accepted, r.New, r.Rejected, r.Errors
	s.Lines, s.SkippedLines = r.Lines, r.SkippedLines
	s.complete(StageIngest)
}

func (s *Summary) reported(r activities.FileResult) {
	s.complete(StageReport)
	s.Outputs.ErrorReport = r.Path
	s.Outputs.Dir = path.Dir(r.Path)
}

func (s *Summary) dumped(r activities.DumpResult) {
	s.complete(StageDump)
	s.Outputs.Transactions = r.Path
	s.Tagged, s.Annotated = r.Tagged, r.Annotated
}

// rootCause is the innermost message of an activity failure, without Temporal's wrapping.
func rootCause(err error) string {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			break
		}
		err = u.Unwrap()
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
