package starterapp

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// Progress display settings of `starter run`.
const (
	progressPoll      = 500 * time.Millisecond // how often the run's progress is queried
	progressLineEvery = 5 * time.Second        // plain progress lines, when stdout is not a terminal
	progressBarWidth  = 30
)

// isTerminal reports whether f (a reader or a writer) is a terminal: an *os.File that answers
// a terminal's control request (/dev/null, another character device, is not one).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return false
	}
	return fileIsTerminal(file)
}

// showProgress queries the run's progress until the returned function is called. On a
// terminal it redraws one line with a bar; otherwise it prints a plain line when the progress
// changed, at most every progressLineEvery.
func (s *starter) showProgress(ctx context.Context, c client.Client, id, runID string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	tty := isTerminal(s.stdout)
	var wg sync.WaitGroup
	wg.Add(1)
	drawn := false
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressPoll)
		defer tick.Stop()
		var last string
		var lastAt time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			q, err := c.QueryWorkflow(ctx, id, runID, workflows.ProgressQuery)
			if err != nil {
				continue
			}
			var sum workflows.Summary
			if q.Get(&sum) != nil {
				continue
			}
			line := ProgressLine(&sum, progressBarWidth)
			switch {
			case tty:
				fmt.Fprintf(s.stdout, "\r%s\x1b[K", line)
				drawn = true
			case line != last && time.Since(lastAt) >= progressLineEvery:
				fmt.Fprintln(s.stdout, "progress:", line)
				last, lastAt = line, time.Now()
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		if drawn {
			fmt.Fprint(s.stdout, "\r\x1b[K")
		}
	}
}

// ProgressLine renders a run's progress on one line: a bar of width characters, then each
// stage's state. While Ingest runs the bar is the share of the file read (from the progress
// Ingest reports every few seconds); afterwards it is the tag and annotate rows done.
func ProgressLine(s *workflows.Summary, width int) string {
	var done, total int64
	var parts []string
	frac, ingesting := 0.0, false
	for _, st := range s.Stages {
		switch {
		case st.Name == workflows.StageIngest && st.Status == workflows.StatusRunning && st.Size > 0:
			ingesting = true
			frac = min(float64(st.Bytes)/float64(st.Size), 1)
			part := fmt.Sprintf("ingest %d rows read", st.Done)
			if st.Phase == activities.IngestSettling {
				part += ", settling"
			}
			parts = append(parts, part)
		case st.Total > 0 && (st.Name == workflows.StageTag || st.Name == workflows.StageAnnotate):
			done += st.Done
			total += st.Total
			parts = append(parts, fmt.Sprintf("%s %d/%d", st.Name, st.Done, st.Total))
		case st.Status == workflows.StatusRunning:
			parts = append(parts, st.Name+" running")
		case st.Status == workflows.StatusFailed:
			parts = append(parts, st.Name+" failed")
		}
	}
	switch {
	case ingesting:
	case total > 0:
		frac = float64(done) / float64(total)
	case s.Status != workflows.StatusRunning:
		frac = 1
	}
	if width < 1 {
		width = 1
	}
	filled := min(int(frac*float64(width)), width)
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
	return fmt.Sprintf("%s %3d%% %s", bar, int(frac*100), strings.Join(parts, ", "))
}
