package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/natsjs"
)

// compileSchema compiles one of docs/schema's JSON Schemas, with formats asserted.
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join("..", "docs", "schema", name))
	require.NoError(t, err)
	return s
}

func validate(s *jsonschema.Schema, data []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// The messages txflow publishes, consumed from the stream as a consumer would, are valid
// against the JSON Schemas the documentation gives; and the schemas do tell a message that is not.
func TestPublishedMessagesMatchTheSchemas(t *testing.T) {
	txSchema := compileSchema(t, "transaction-message.schema.json")
	noticeSchema := compileSchema(t, "run-notice.schema.json")

	_, broker := openBroker(t)
	store := newFakeStore()
	ingestForDelivery(t, store, "txflow-acme-1b2666569dcef9c4", deliveryFile)
	// And a file without dates.
	ingestForDelivery(t, store, "txflow-acme-2", "id,amount,wording\nU1,-1.00,TAXI\n")
	ctx := context.Background()
	d := &Delivery{DB: store, Broker: broker}
	for _, run := range []string{"txflow-acme-1b2666569dcef9c4", "txflow-acme-2"} {
		_, err := d.Publish(ctx, ChunkInput{RunID: run, From: 1, To: 100})
		require.NoError(t, err)
	}
	n := &Notifier{OutputRoot: t.TempDir(), UIURL: "http://localhost:8233", Broker: broker}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(n)
	started := time.Date(2026, 1, 2, 6, 0, 0, 0, time.UTC)
	_, err := env.ExecuteActivity(n.Event, RunNotice{RunID: "txflow-acme-1b2666569dcef9c4", File: "inbox/acme/a.csv", Account: "acme",
		SHA256: "1b2666569dcef9c4bd1d0639559b07e37c36ffc8c1db5ef3930e7a3741d4e845", Status: "completed",
		Counts:    Counts{RowsRead: 5, Lines: 6, Ingested: 5, New: 5, Tagged: 4, Annotated: 4, Published: 5},
		Outputs:   NoticeOutputs{Dir: "/out/r", Transactions: "/out/r/output_transactions.csv", ErrorReport: "/out/r/error_report.csv", Summary: "/out/r/summary.json"},
		StartedAt: started, FinishedAt: started.Add(time.Minute), Attempt: "0190b5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b"})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(n.Alert, RunNotice{RunID: "txflow-acme-3", File: "page.csv", Account: "acme", Status: "failed",
		FailedStage: "ingest", Error: "page.csv: HTML document", ErrorType: ErrTypeBadFile, StartedAt: started, FinishedAt: started,
		Attempt: "a1"})
	require.NoError(t, err)

	// Consume the stream from its start.
	cons, err := broker.JetStream().OrderedConsumer(ctx, natsjs.DefaultStream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	bySubject := map[string]int{}
	var txBody []byte
	for m := range batch.Messages() {
		bySubject[m.Subject()]++
		schema := txSchema
		if m.Subject() == natsjs.SubjectRunsCompleted || m.Subject() == natsjs.SubjectRunsFailed {
			schema = noticeSchema
		}
		require.NoError(t, validate(schema, m.Data()), "%s: %s", m.Subject(), m.Data())
		if txBody == nil && m.Subject() == "txflow.transactions.acme" {
			txBody = m.Data()
		}
	}
	require.NoError(t, batch.Error())
	require.Equal(t, map[string]int{"txflow.transactions.acme": 6, "txflow.runs.completed": 1, "txflow.runs.failed": 1}, bySubject)

	// The schemas reject what a consumer must not receive.
	var msg map[string]any
	require.NoError(t, json.Unmarshal(txBody, &msg))
	for name, change := range map[string]func(m map[string]any){
		"an extra key":        func(m map[string]any) { m["extra"] = 1 },
		"no tag key":          func(m map[string]any) { delete(m, "tag") },
		"an amount as number": func(m map[string]any) { m["amount"] = -12.5 },
		"one decimal":         func(m map[string]any) { m["amount"] = "-12.5" },
		"a version 0":         func(m map[string]any) { m["version"] = 0 },
		"a bad date":          func(m map[string]any) { m["date"] = "2026-02-30" },
	} {
		bad := map[string]any{}
		for k, v := range msg {
			bad[k] = v
		}
		change(bad)
		b, err := json.Marshal(bad)
		require.NoError(t, err)
		require.Error(t, validate(txSchema, b), name)
	}
	require.Error(t, validate(noticeSchema, []byte(`{"kind":"txflow.run.completed","run_id":"r"}`)))
}
