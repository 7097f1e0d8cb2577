package devtemporal

import (
	"fmt"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
)

// LocalActivity is what the Go SDK records of a local activity, in the "data" of its marker: a
// history says when it completed, not when it started.
type LocalActivity struct {
	ActivityType string
	Attempt      int32
	ReplayTime   time.Time // when it completed
}

// LocalActivityOf decodes the local activity that ev records; ok is false for any other event.
func LocalActivityOf(ev *historypb.HistoryEvent) (la LocalActivity, ok bool, err error) {
	m := ev.GetMarkerRecordedEventAttributes()
	if m.GetMarkerName() != "LocalActivity" {
		return LocalActivity{}, false, nil
	}
	if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["data"], &la); err != nil {
		return LocalActivity{}, false, fmt.Errorf("local activity marker %d: %w", ev.GetEventId(), err)
	}
	return la, true, nil
}
