package starterapp

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// Bad command lines are refused before Temporal is dialled (it is unreachable here), exit 2.
func TestReclassifyRefusesBadArguments(t *testing.T) {
	env := nowhere(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"reclassify"}, "give --account ACC, or --all for every account"},
		{[]string{"reclassify", "--account", "acme", "--all"}, "--account and --all: give one of them"},
		{[]string{"reclassify", "--account", "acme corp"}, `--account: account "acme corp" has ' ' at byte 4`},
		{[]string{"reclassify", "--all", "--from", "31/01/2026"}, `--from: "31/01/2026" is not a date (YYYY-MM-DD)`},
		{[]string{"reclassify", "--all", "--from", "2026-02-01", "--to", "2026-01-31"}, "the range ends (2026-01-31) before it starts (2026-02-01)"},
		{[]string{"reclassify", "--all", "--rules", "-1"}, "--rules: -1 is not a version"},
		{[]string{"reclassify", "--all", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"reclassify", "--all", "extra"}, "Usage:"},
		{[]string{"reclassify", "approve"}, "Usage: starter reclassify approve ID"},
		{[]string{"reclassify", "status"}, "Usage: starter reclassify status ID"},
	} {
		code, out, errOut := runMain(t, env, nil, tc.args...)
		require.Equal(t, ExitUsage, code, "%v: %s%s", tc.args, out, errOut)
		require.Contains(t, errOut, tc.want, tc.args)
	}
	code, out, _ := runMain(t, env, nil, "reclassify", "help")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "starter reclassify approve ID")
	code, out, _ = runMain(t, env, nil, "help")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "starter reclassify")

	// A good command line gets as far as dialling Temporal.
	code, _, errOut := runMain(t, env, nil, "reclassify", "--account", "acme", "--from", "2026-01-01")
	require.Equal(t, ExitRunFailed, code)
	require.Contains(t, errOut, "connect to temporal")
}

func TestPrintReclassify(t *testing.T) {
	expires := time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	PrintReclassify(&b, &workflows.ReclassifyState{
		ID: "reclassify-acme-1a2b3c4d", Account: "acme", From: "2026-01-01", RulesVersion: 3,
		Status: workflows.ReclassifyAwaiting, ExpiresAt: &expires,
		ReclassifyCounts: activities.ReclassifyCounts{Items: 1200, Changed: 40, TagChanged: 38, AnnotationChanged: 2, ErrorChanged: 2,
			Sources: []activities.VersionCount{{Version: 0, Items: 200}, {Version: 2, Items: 1000}}},
		Diff: "/out/reclassify-acme-1a2b3c4d/reclassify_diff.csv",
	})
	require.Equal(t, `reclassification reclassify-acme-1a2b3c4d: awaiting_approval
  target       account acme, dated 2026-01-01 to …
  rules        version 3 (stored results from none: 200, version 2: 1000)
  transactions       1200
  changed              40
  tag                  38
  annotation            2
  error                 2
  applied               0
diff: /out/reclassify-acme-1a2b3c4d/reclassify_diff.csv
waiting for a decision until 2026-03-08T10:00:00Z:
  starter reclassify approve reclassify-acme-1a2b3c4d
  starter reclassify reject reclassify-acme-1a2b3c4d
`, b.String())
}
