package starterapp

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/workflows"
)

func TestStatusExitCode(t *testing.T) {
	for st, want := range map[enumspb.WorkflowExecutionStatus]int{
		enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:        ExitOK,
		enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:          ExitOK,
		enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: ExitOK,
		enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:           ExitRunFailed,
		enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:       ExitRunFailed,
		enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:         ExitRunFailed,
		enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:        ExitRunFailed,
	} {
		require.Equal(t, want, StatusExitCode(st), st.String())
	}
}

func TestCheckTimeZone(t *testing.T) {
	for _, ok := range []string{"UTC", "Europe/Paris", "America/New_York"} {
		require.NoError(t, CheckTimeZone(ok), ok)
	}
	for _, bad := range []string{"", "Local", "Mars/Olympus_Mons", "CEST+2"} {
		require.ErrorContains(t, CheckTimeZone(bad), "IANA time zone name", bad)
	}
}

// A time zone the machine does not know is a usage error, found before Temporal is dialled
// (TEMPORAL_ADDRESS points nowhere).
func TestScheduleCreateRejectsUnknownTimeZone(t *testing.T) {
	var out, errOut bytes.Buffer
	env := config.Map{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_CONFIG_FILE": "/dev/null"}
	code := Main(context.Background(), []string{"schedule", "create", "daily", "--cron", "0 6 * * *", "--timezone", "Europe/Pariss"},
		env, &out, &errOut)
	require.Equal(t, ExitUsage, code, errOut.String())
	require.Contains(t, errOut.String(), `--timezone "Europe/Pariss"`)

	out.Reset()
	errOut.Reset()
	require.Equal(t, ExitOK, Main(context.Background(), []string{"schedule", "help"}, env, &out, &errOut))
	require.Contains(t, errOut.String(), "--timezone UTC")
	require.Contains(t, errOut.String(), "default UTC")
}

func TestSpecTextStatesTimeZone(t *testing.T) {
	require.Equal(t, "0 6 * * * (UTC)", specText(&client.ScheduleSpec{CronExpressions: []string{"0 6 * * *"}}))
	require.Equal(t, "0 6 * * * (Europe/Paris)",
		specText(&client.ScheduleSpec{CronExpressions: []string{"0 6 * * *"}, TimeZoneName: "Europe/Paris"}))
}

func TestPrintInboxResult(t *testing.T) {
	var b bytes.Buffer
	PrintInboxResult(&b, &workflows.InboxResult{Dir: "inbox",
		Files: []workflows.InboxFileResult{
			{File: "inbox/a.csv", RunID: "txflow-aa", Outcome: workflows.InboxArchived, MovedTo: "archive/a.csv"},
			{File: "inbox/b.csv", RunID: "txflow-bb", Outcome: workflows.InboxFailed, MovedTo: "failed/b.csv", Error: "no header"},
		},
		Totals: workflows.InboxTotals{Archived: 1, Failed: 1}})
	require.Equal(t, "inbox inbox/: 1 archived, 1 failed, 0 left in the inbox\n"+
		"  inbox/a.csv: archived → archive/a.csv (run txflow-aa)\n"+
		"  inbox/b.csv: failed → failed/b.csv (run txflow-bb): no header\n", b.String())

	b.Reset()
	PrintInboxResult(&b, &workflows.InboxResult{Dir: "inbox"})
	require.Equal(t, "inbox inbox/: 0 archived, 0 failed, 0 left in the inbox\n  no file was waiting\n", b.String())
}
