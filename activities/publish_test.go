package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/natsjs/natstest"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// deliveryFile is a small file with dates, a wording to escape and a row in error.
const deliveryFile = "id,date,amount,wording\n" +
	"T1,2026-01-31,-12.50,TAXI PARIS\n" +
	"T2,2026-02-01,350.00,<TOTO> & co\n" +
	"T3,2026-02-01,2000000.00,TUTU big\n" +
	"T4,2026-02-01,0.00,nothing\n" +
	"T5,2026-02-02,-250.00,TATA TOTO\n"

// openBroker starts an embedded NATS server and a broker connected to it, ready.
func openBroker(t *testing.T) (*natstest.Server, *natsjs.Broker) {
	t.Helper()
	srv := natstest.Start(t)
	b, err := natsjs.Open(srv.URL(), "", "", nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.Eventually(t, func() bool { return b.Ready(context.Background()) == nil }, 20*time.Second, 20*time.Millisecond)
	return srv, b
}

// streamMessages returns the messages of the broker's stream, in order, as
// "<Nats-Msg-Id> <subject> <body>".
func streamMessages(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, natsjs.DefaultStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s %s %s", m.Header.Get(jetstream.MsgIDHeader), m.Subject, m.Data))
	}
	return out
}

// ingestForDelivery ingests content for account acme with delivery on, then tags and annotates
// it, as the pipeline does before Publish.
func ingestForDelivery(t *testing.T, db Store, runID, content string) IngestResult {
	t.Helper()
	ctx := context.Background()
	input := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(input, "in.csv"), []byte(content), 0o644))
	a := &Activities{DB: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: t.TempDir(), Outbox: true,
		Progress: &recordingSink{}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: runID, File: "in.csv", Account: "acme"})
	require.NoError(t, err)
	var res IngestResult
	require.NoError(t, v.Get(&res))
	all := ChunkInput{RunID: runID, From: 1, To: res.MaxSeq + 1}
	_, err = a.Tag(ctx, all)
	require.NoError(t, err)
	_, err = a.Annotate(ctx, all)
	require.NoError(t, err)
	return res
}

func TestTransactionMsgID(t *testing.T) {
	// sha256("acme\x1fT1") starts with a5ce68f2f66ce658.
	require.Equal(t, "tx-a5ce68f2f66ce658-v1", TransactionMsgID("acme", "T1", 1))
	require.Equal(t, "tx-a5ce68f2f66ce658-v2", TransactionMsgID("acme", "T1", 2))
	require.NotEqual(t, TransactionMsgID("acme", "T1", 1), TransactionMsgID("acm", "eT1", 1))
	require.Equal(t, "txflow.transactions.FR76.3000", TransactionSubject("FR76.3000"))
	require.Equal(t, "txflow.transactions._acme__x_", TransactionSubject(".acme..x."))
}

// Publish delivers every new transaction of the chunk once, with the stored result, slice by
// slice; a second Publish finds nothing left to deliver.
func TestPublishDeliversTheChunksMessages(t *testing.T) {
	_, broker := openBroker(t)
	store := newFakeStore()
	res := ingestForDelivery(t, store, "txflow-acme-1", deliveryFile)
	require.EqualValues(t, 5, res.Pending)

	d := &Delivery{DB: store, Broker: broker, Slice: 2}
	ctx := context.Background()
	out, err := d.Publish(ctx, ChunkInput{RunID: "txflow-acme-1", From: 1, To: 4})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Published: 3}, out)
	require.Equal(t, 2, store.pending("txflow-acme-1"), "only the chunk's lines")
	out, err = d.Publish(ctx, ChunkInput{RunID: "txflow-acme-1", From: 4, To: 6})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Published: 2}, out)
	require.Zero(t, store.pending("txflow-acme-1"))

	want := []string{
		`tx-a5ce68f2f66ce658-v1 txflow.transactions.acme {"account":"acme","id":"T1","date":"2026-01-31","amount":"-12.50","wording":"TAXI PARIS","tag":"TAXI","annotation":"SMALL EXPENSE","error":null,"run_id":"txflow-acme-1","version":1}`,
		TransactionMsgID("acme", "T2", 1) + ` txflow.transactions.acme {"account":"acme","id":"T2","date":"2026-02-01","amount":"350.00","wording":"<TOTO> & co","tag":"TOTO","annotation":"LARGE SALE","error":null,"run_id":"txflow-acme-1","version":1}`,
		TransactionMsgID("acme", "T3", 1) + ` txflow.transactions.acme {"account":"acme","id":"T3","date":"2026-02-01","amount":"2000000.00","wording":"TUTU big","tag":"TUTU","annotation":null,"error":"amount_too_high","run_id":"txflow-acme-1","version":1}`,
		TransactionMsgID("acme", "T4", 1) + ` txflow.transactions.acme {"account":"acme","id":"T4","date":"2026-02-01","amount":"0.00","wording":"nothing","tag":null,"annotation":null,"error":null,"run_id":"txflow-acme-1","version":1}`,
		TransactionMsgID("acme", "T5", 1) + ` txflow.transactions.acme {"account":"acme","id":"T5","date":"2026-02-02","amount":"-250.00","wording":"TATA TOTO","tag":null,"annotation":"EXPENSE","error":null,"run_id":"txflow-acme-1","version":1}`,
	}
	require.Equal(t, want, streamMessages(t, broker.JetStream()))

	out, err = d.Publish(ctx, ChunkInput{RunID: "txflow-acme-1", From: 1, To: 6})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{}, out, "nothing left to deliver")
	require.Len(t, streamMessages(t, broker.JetStream()), 5)
}

// Messages the broker acknowledged but that could not be marked delivered are published again by
// the retry: the stream drops them as duplicates, by their ids.
func TestPublishAgainAfterAnUnmarkedAcknowledgement(t *testing.T) {
	_, broker := openBroker(t)
	store := newFakeStore()
	ingestForDelivery(t, store, "r", deliveryFile)
	store.fail.delivered = errConnectionLost
	d := &Delivery{DB: store, Broker: broker}
	_, err := d.Publish(context.Background(), ChunkInput{RunID: "r", From: 1, To: 6})
	require.ErrorIs(t, err, errConnectionLost)
	require.Equal(t, 5, store.pending("r"), "not marked: still pending")
	require.Len(t, streamMessages(t, broker.JetStream()), 5)

	out, err := d.Publish(context.Background(), ChunkInput{RunID: "r", From: 1, To: 6})
	require.NoError(t, err)
	require.EqualValues(t, 5, out.Published)
	require.Zero(t, store.pending("r"))
	require.Len(t, streamMessages(t, broker.JetStream()), 5, "the stream kept one of each")
}

// With the broker down, Publish fails with a retryable error that says it waits for the broker,
// tells the workflow so, and delivers nothing; once the broker is back, it delivers everything.
func TestPublishWaitsForTheBroker(t *testing.T) {
	srv, broker := openBroker(t)
	store := newFakeStore()
	ingestForDelivery(t, store, "r", deliveryFile)
	var mu sync.Mutex
	var signals []PublishWaiting
	d := &Delivery{DB: store, Broker: broker, Waiting: func(_ context.Context, _, _ string, w PublishWaiting) error {
		mu.Lock()
		defer mu.Unlock()
		signals = append(signals, w)
		return nil
	}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(d)

	srv.Stop()
	require.Eventually(t, func() bool { return broker.Ready(context.Background()) != nil }, 10*time.Second, 20*time.Millisecond)
	_, err := env.ExecuteActivity(d.Publish, ChunkInput{RunID: "r", From: 1, To: 6})
	require.Error(t, err)
	require.Contains(t, err.Error(), "waiting for the broker: nats is not reachable")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.False(t, appErr.NonRetryable())
	require.Equal(t, 5, store.pending("r"))
	mu.Lock()
	require.Len(t, signals, 1)
	require.True(t, strings.HasPrefix(signals[0].Error, WaitingForBroker+": "), signals[0].Error)
	mu.Unlock()

	srv.Restart()
	require.Eventually(t, func() bool { return broker.Ready(context.Background()) == nil }, 20*time.Second, 20*time.Millisecond)
	v, err := env.ExecuteActivity(d.Publish, ChunkInput{RunID: "r", From: 1, To: 6})
	require.NoError(t, err)
	var out ChunkResult
	require.NoError(t, v.Get(&out))
	require.EqualValues(t, 5, out.Published)
	require.Zero(t, store.pending("r"))
	require.Len(t, streamMessages(t, broker.JetStream()), 5)
}

// A worker without delivery configured cannot publish: it fails, retryably, for a worker that can.
func TestPublishWithoutBroker(t *testing.T) {
	store := newFakeStore()
	ingestForDelivery(t, store, "r", deliveryFile)
	_, err := (&Delivery{DB: store}).Publish(context.Background(), ChunkInput{RunID: "r", From: 1, To: 6})
	require.EqualError(t, err, "waiting for the broker: delivery is off on this worker (TXFLOW_NATS_URL is empty)")
	require.Equal(t, 5, store.pending("r"))
}

// Through a real PostgreSQL and a real NATS: the run's new transactions are delivered, and the
// same file run again delivers nothing.
func TestPublishFromPostgreSQL(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	_, broker := openBroker(t)
	d := &Delivery{DB: db, Broker: broker, Slice: 3}

	res := ingestForDelivery(t, db, "txflow-acme-1", deliveryFile)
	require.EqualValues(t, 5, res.Pending)
	var published int64
	for _, c := range []ChunkInput{{From: 1, To: 3}, {From: 3, To: 6}} {
		c.RunID = "txflow-acme-1"
		out, err := d.Publish(ctx, c)
		require.NoError(t, err)
		published += out.Published
	}
	require.EqualValues(t, 5, published)
	pending, err := db.PendingOutbox(ctx, "txflow-acme-1")
	require.NoError(t, err)
	require.Zero(t, pending)
	got := streamMessages(t, broker.JetStream())
	require.Len(t, got, 5)
	require.Equal(t, `tx-a5ce68f2f66ce658-v1 txflow.transactions.acme {"account":"acme","id":"T1","date":"2026-01-31","amount":"-12.50","wording":"TAXI PARIS","tag":"TAXI","annotation":"SMALL EXPENSE","error":null,"run_id":"txflow-acme-1","version":1}`, got[0])
	require.Contains(t, got[3], `{"account":"acme","id":"T4","date":"2026-02-01","amount":"0.00","wording":"nothing","tag":null,"annotation":null,"error":null,`)

	// The same file again (another run id, so that it is not a resumed run): nothing new.
	again := ingestForDelivery(t, db, "txflow-acme-2", deliveryFile)
	require.Zero(t, again.Pending)
	out, err := d.Publish(ctx, ChunkInput{RunID: "txflow-acme-2", From: 1, To: again.MaxSeq + 1})
	require.NoError(t, err)
	require.Zero(t, out.Published)
	require.Len(t, streamMessages(t, broker.JetStream()), 5)

	// A file without dates: its new transaction's message has none.
	third := ingestForDelivery(t, db, "txflow-acme-3", "id,amount,wording\nT1,-12.50,TAXI PARIS\nT6,1.00,TOTO\n")
	require.EqualValues(t, 1, third.Pending)
	out, err = d.Publish(ctx, ChunkInput{RunID: "txflow-acme-3", From: 1, To: third.MaxSeq + 1})
	require.NoError(t, err)
	require.EqualValues(t, 1, out.Published)
	got = streamMessages(t, broker.JetStream())
	require.Len(t, got, 6)
	require.Equal(t, TransactionMsgID("acme", "T6", 1)+` txflow.transactions.acme {"account":"acme","id":"T6","amount":"1.00","wording":"TOTO","tag":"TOTO","annotation":"SALE","error":null,"run_id":"txflow-acme-3","version":1}`, got[5])
}
