package devtemporal

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// The committed history of a small run: its steps after Ingest are local activities.
func TestLocalActivityOf(t *testing.T) {
	f, err := os.Open("../../../workflows/testdata/processfile_local_history.json")
	require.NoError(t, err)
	defer f.Close()
	hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	runs := map[string]int{}
	for _, ev := range hist.GetEvents() {
		la, ok, err := LocalActivityOf(ev)
		require.NoError(t, err)
		if ok {
			require.EqualValues(t, 1, la.Attempt)
			require.False(t, la.ReplayTime.IsZero())
			runs[la.ActivityType]++
		}
	}
	require.Equal(t, map[string]int{"ReportErrors": 1, "Tag": 3, "Annotate": 3, "Dump": 1, "WriteSummary": 1, "Event": 1}, runs)
}
