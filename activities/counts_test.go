package activities

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

// TestIngestResultWireForm checks that IngestResult crosses Temporal under the field names it had
// before Counts: a result recorded in the history of a running workflow (here, the one replayed by
// the workflows package) reads back with its counts, and a new result reads the same to a worker
// of the earlier release.
func TestIngestResultWireForm(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	recorded := `{"SHA256":"13b8","RowsRead":20,"Accepted":18,"New":17,"Rejected":2,"Errors":1,"MaxSeq":20}`
	payload, err := dc.ToPayload(json.RawMessage(recorded))
	require.NoError(t, err)
	var r IngestResult
	require.NoError(t, dc.FromPayload(payload, &r))
	require.Equal(t, IngestResult{SHA256: "13b8", MaxSeq: 20,
		Counts: Counts{RowsRead: 20, Ingested: 18, New: 17, Rejected: 2, InError: 1}}, r)

	r.Lines, r.SkippedLines = 25, 3
	p, err := dc.ToPayload(r)
	require.NoError(t, err)
	require.JSONEq(t, `{"SHA256":"13b8","RowsRead":20,"Lines":25,"SkippedLines":3,"Accepted":18,"New":17,"Rejected":2,"Errors":1,"MaxSeq":20}`,
		string(p.GetData()))
	var back IngestResult
	require.NoError(t, dc.FromPayload(p, &back))
	require.Equal(t, r, back)
}

// TestWriteSummaryIndents checks that summary.json is written indented, like failure.json, though
// the summary reaches the activity compacted by Temporal's payload converter.
func TestWriteSummaryIndents(t *testing.T) {
	root := t.TempDir()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{OutputRoot: root}
	env.RegisterActivity(a)
	in := SummaryInput{RunID: "txflow-indent", Summary: json.RawMessage("{\n  \"status\": \"completed\",\n  \"outputs\": {\"dir\": \"d\"}\n}")}
	v, err := env.ExecuteActivity(a.WriteSummary, in)
	require.NoError(t, err)
	var path string
	require.NoError(t, v.Get(&path))
	require.Equal(t, filepath.Join(root, "txflow-indent", SummaryFile), path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "{\n  \"status\": \"completed\",\n  \"outputs\": {\n    \"dir\": \"d\"\n  }\n}\n", string(b))
}
