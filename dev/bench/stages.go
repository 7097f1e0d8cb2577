package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// stageSpan is when the activities of one type ran: from the first scheduled to the last closed.
type stageSpan struct {
	name        string
	first, last time.Time
	count       int
}

// stageSpans reads the run's history and returns the span of each activity type, in order.
func stageSpans(ctx context.Context, c client.Client, workflowID string) ([]stageSpan, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	types := map[int64]string{}
	spans := map[string]*stageSpan{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
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
	sort.Slice(out, func(i, j int) bool { return out[i].first.Before(out[j].first) })
	return out, nil
}

func printSpans(w io.Writer, spans []stageSpan) {
	for _, s := range spans {
		fmt.Fprintf(w, "  %-14s %9s  (%d activities)\n", s.name, s.last.Sub(s.first).Round(time.Millisecond), s.count)
	}
}
