package starterapp

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

func TestProgressLineShowsIngest(t *testing.T) {
	stages := func(ingest workflows.Stage) []*workflows.Stage {
		ingest.Name = workflows.StageIngest
		return []*workflows.Stage{&ingest,
			{Name: workflows.StageTag, Status: workflows.StatusPending},
			{Name: workflows.StageAnnotate, Status: workflows.StatusPending}}
	}
	s := &workflows.Summary{Status: workflows.StatusRunning, Stages: stages(workflows.Stage{
		Status: workflows.StatusRunning, Done: 120_000, Bytes: 250, Size: 1000, Phase: activities.IngestLoading})}
	require.Equal(t, "[##........]  25% ingest 120000 rows read", ProgressLine(s, 10))

	s.Stages = stages(workflows.Stage{Status: workflows.StatusRunning, Done: 480_000, Bytes: 1000, Size: 1000, Phase: activities.IngestSettling})
	require.Equal(t, "[##########] 100% ingest 480000 rows read, settling", ProgressLine(s, 10))

	// Before the first report: the stage only runs.
	s.Stages = stages(workflows.Stage{Status: workflows.StatusRunning})
	require.Equal(t, "[..........]   0% ingest running", ProgressLine(s, 10))

	// Afterwards the bar is tag and annotate's.
	s.Stages = stages(workflows.Stage{Status: workflows.StatusCompleted, Done: 480_000, Total: 480_000})
	s.Stages[1].Status, s.Stages[1].Done, s.Stages[1].Total = workflows.StatusRunning, 100, 400
	s.Stages[2].Status, s.Stages[2].Done, s.Stages[2].Total = workflows.StatusRunning, 300, 400
	require.Equal(t, "[#####.....]  50% tag 100/400, annotate 300/400", ProgressLine(s, 10))
}
