package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/dev/internal/devtemporal"
)

// stageSpan is when the activities of one type ran: from the first scheduled to the last closed.
// For local activities (a small run's stages after Ingest), whose history records only when each
// completed, first is the run's start.
type stageSpan struct {
	name        string
	first, last time.Time
	count       int
	local       bool
}

// stageSpans reads the run's history and returns the span of each activity type, in order.
func stageSpans(ctx context.Context, c client.Client, workflowID string) ([]stageSpan, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	types := map[int64]string{}
	spans := map[string]*stageSpan{}
	var began time.Time
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			began = at
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			la, ok, err := devtemporal.LocalActivityOf(ev)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			s := spans[la.ActivityType]
			if s == nil {
				s = &stageSpan{name: la.ActivityType, first: began, local: true}
				spans[la.ActivityType] = s
			}
			s.count++
			s.last = maxTime(s.last, la.ReplayTime)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			types[ev.GetEventId()] = name
			s := spans[name]
			if s == nil {
				s = &stageSpan{name: name, first: at}
				spans[name] = s
			}
			s.count++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if s := spans[types[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]]; s != nil && at.After(s.last) {
				s.last = at
			}
		}
	}
	out := make([]stageSpan, 0, len(spans))
	for _, s := range spans {
		out = append(out, *s)
	}
	// Activities in the order they were first scheduled, then local activities as they completed.
	sort.Slice(out, func(i, j int) bool {
		if out[i].local != out[j].local {
			return !out[i].local
		}
		if out[i].local {
			return out[i].last.Before(out[j].last)
		}
		return out[i].first.Before(out[j].first)
	})
	return out, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func printSpans(w io.Writer, spans []stageSpan) {
	for _, s := range spans {
		if s.local {
			fmt.Fprintf(w, "  %-14s %9s  (%d local activities, done that long after the run's start)\n", s.name, s.last.Sub(s.first).Round(time.Millisecond), s.count)
			continue
		}
		fmt.Fprintf(w, "  %-14s %9s  (%d activities)\n", s.name, s.last.Sub(s.first).Round(time.Millisecond), s.count)
	}
}

// printIngestPhases prints how the run's Ingest stage divided between loading the file and
// settling the run: from the runs row's started_at (BeginIngest) to its ingested_at (when the
// settlement began, under its lock), then to the stage's end. It prints nothing for a run without an
// Ingest activity or a settled row.
func printIngestPhases(ctx context.Context, w io.Writer, dbURL, runID string, spans []stageSpan) error {
	var ingest *stageSpan
	for i := range spans {
		if spans[i].name == "Ingest" && !spans[i].local {
			ingest = &spans[i]
		}
	}
	if ingest == nil {
		return nil
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("ingest phases: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var began, settling *time.Time
	err = conn.QueryRow(ctx, "SELECT started_at, ingested_at FROM runs WHERE run_id = $1", runID).Scan(&began, &settling)
	if err != nil || began == nil || settling == nil {
		return err
	}
	fmt.Fprintf(w, "  %-14s %9s  loading, then %s settling (the run's row: begun, settling; Ingest's end)\n", "of Ingest",
		settling.Sub(*began).Round(time.Millisecond), ingest.last.Sub(*settling).Round(time.Millisecond))
	return nil
}
