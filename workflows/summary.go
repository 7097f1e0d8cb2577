package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/txflow/txflow/activities"
)

// Summary is what a run did: its counts, outputs and the status of each stage. The progress
// query returns it while the run goes on; the run returns it and writes it as summary.json. It is
// a plain value: the run (processfile.go) fills it in, its methods only read it.
type Summary struct {
	RunID string `json:"run_id"`
	File  string `json:"file"`
	// Account is the run's account: that of every row of a file without an account column
	// (AccountColumn says the file had one, and its rows are under their own).
	Account       string `json:"account"`
	AccountColumn bool   `json:"account_column,omitempty"`
	// Profile is the mapping profile the file was read with (named for the run, or chosen by the
	// file's name), absent when none was used.
	Profile string `json:"profile,omitempty"`
	// RulesVersion is the version of the rules the run applies (tag words, thresholds), known
	// once Ingest completed; absent before, and for runs started before versions existed.
	RulesVersion int        `json:"rules_version,omitempty"`
	SHA256       string     `json:"sha256,omitempty"`
	Status       string     `json:"status"` // running, completed or failed
	Error        string     `json:"error,omitempty"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`

	// The run's counts, with flat keys (rows_read, ingested, ...): see activities.Counts.
	activities.Counts

	Outputs Outputs  `json:"outputs"`
	Stages  []*Stage `json:"stages"`
}

// Outputs are the paths of the files a run writes, on the worker's file system, as the
// activities that wrote them returned them. Summary is set once summary.json is written, so the
// file itself does not name it.
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
	// Publish: while it waits for the broker, Phase is activities.WaitingForBroker and Waiting
	// the last failure (until a chunk completes).
	Waiting string `json:"waiting,omitempty"`
}

func newSummary(runID, file, account string, now time.Time) *Summary {
	s := &Summary{RunID: runID, File: file, Account: account, Status: StatusRunning, StartedAt: now}
	for _, name := range []string{StageIngest, StageTag, StageAnnotate, StageReport, StageDump, StageSummary} {
		s.Stages = append(s.Stages, &Stage{Name: name, Status: StatusPending})
	}
	return s
}

func (s *Summary) stage(name string) *Stage {
	if st := s.findStage(name); st != nil {
		return st
	}
	panic("unknown stage " + name)
}

// findStage returns the stage name, nil when the run has none of that name (publish).
func (s *Summary) findStage(name string) *Stage {
	for _, st := range s.Stages {
		if st.Name == name {
			return st
		}
	}
	return nil
}

// addStage adds the stage name, pending, before the stage before, unless the run has it.
func (s *Summary) addStage(name, before string) {
	if s.findStage(name) != nil {
		return
	}
	for i, st := range s.Stages {
		if st.Name == before {
			s.Stages = append(s.Stages[:i], append([]*Stage{{Name: name, Status: StatusPending}}, s.Stages[i:]...)...)
			return
		}
	}
	s.Stages = append(s.Stages, &Stage{Name: name, Status: StatusPending})
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
	fmt.Fprintf(&b, "**File** `%s`  \n**Account** `%s`", s.File, s.Account)
	if s.AccountColumn {
		b.WriteString(" (rows of the file's account column are under their own)")
	}
	if s.Profile != "" {
		fmt.Fprintf(&b, "  \n**Profile** `%s`", s.Profile)
	}
	if s.RulesVersion > 0 {
		fmt.Fprintf(&b, "  \n**Rules** version %d", s.RulesVersion)
	}
	fmt.Fprintf(&b, "  \n**Status** %s", s.Status)
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
		if st := s.findStage(StagePublish); st != nil && st.Status == StatusCompleted {
			fmt.Fprintf(&b, ", published %d", s.Published)
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
		if st.Waiting != "" {
			status += " (" + strings.ReplaceAll(st.Waiting, "|", "\\|") + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", st.Name, status, rows)
	}
	if s.Outputs.Dir != "" {
		fmt.Fprintf(&b, "\n**Outputs** `%s`\n", s.Outputs.Dir)
	}
	return b.String()
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
