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

	"github.com/jackc/pgx/v5"
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
	return ingestTagged(t, db, runID, content, true)
}

// ingestTagged ingests content for account acme with delivery on or off, then tags and
// annotates it.
func ingestTagged(t *testing.T, db Store, runID, content string, outbox bool) IngestResult {
	t.Helper()
	ctx := context.Background()
	input := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(input, "in.csv"), []byte(content), 0o644))
	a := &Activities{DB: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: t.TempDir(), Outbox: outbox,
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

// selectiveBroker publishes through a broker, sending each batch at once (in the order Publish
// sends them), and records the ids of the messages it was given. A batch whose first message has
// an id in failAt is published only in part: its first message is, the others are not
// acknowledged, and the batch fails.
type selectiveBroker struct {
	b *natsjs.Broker

	mu     sync.Mutex
	failAt map[string]bool
	ids    []string
}

func (f *selectiveBroker) Publish(ctx context.Context, msgs []natsjs.Msg) ([]int, error) {
	return f.Send(ctx, msgs)(ctx)
}

func (f *selectiveBroker) Send(ctx context.Context, msgs []natsjs.Msg) func(context.Context) ([]int, error) {
	f.mu.Lock()
	fail := len(msgs) > 0 && f.failAt[msgs[0].ID]
	for _, m := range msgs {
		f.ids = append(f.ids, m.ID)
	}
	f.mu.Unlock()
	if fail {
		acked, err := f.b.Publish(ctx, msgs[:1])
		if err == nil {
			err = errors.New("nats: timeout")
		}
		return func(context.Context) ([]int, error) { return acked, err }
	}
	acked, err := f.b.Publish(ctx, msgs)
	return func(context.Context) ([]int, error) { return acked, err }
}

// sent returns the ids of the messages given since the last call.
func (f *selectiveBroker) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := f.ids
	f.ids = nil
	return ids
}

// openStore returns a migrated store on the database url, closed at cleanup.
func openStore(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(context.Background()))
	return db
}

// openPostgres returns a migrated store on a fresh database, and a connection to it.
func openPostgres(t *testing.T) (*postgres.DB, *pgx.Conn) {
	t.Helper()
	url := testdb.URL(t)
	db := openStore(t, url)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return db, conn
}

// count runs a count query.
func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// msgIDs returns the Nats-Msg-Ids of the transactions ids of account acme, version 1.
func msgIDs(ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = TransactionMsgID("acme", id, 1)
	}
	return out
}

// A run's new transactions are published by range of lines: the settlement wrote one
// outbox_runs row and no outbox row; a slice not wholly acknowledged leaves the chunk's
// acknowledged line before it, and the retry sends again from there only; the run's rows are
// purged with its last chunk, not before; a chunk published again sends nothing.
func TestPublishByRunSendsAgainOnlyWhatWasNotAcknowledged(t *testing.T) {
	ctx := context.Background()
	db, conn := openPostgres(t)
	_, broker := openBroker(t)
	res := ingestForDelivery(t, db, "r", deliveryFile)
	require.EqualValues(t, 5, res.Pending)
	require.Zero(t, count(t, conn, "SELECT count(*) FROM outbox"), "no row per transaction")
	require.EqualValues(t, 1, count(t, conn, "SELECT count(*) FROM outbox_runs WHERE run_id = 'r' AND max_seq = 5"))

	// Chunks [1,2) and [2,6), slices of two lines: [2,4) is acknowledged, [4,6) in part only.
	fb := &selectiveBroker{b: broker, failAt: map[string]bool{TransactionMsgID("acme", "T4", 1): true}}
	d := &Delivery{DB: db, Broker: fb, Slice: 2}
	_, err := d.Publish(ctx, ChunkInput{RunID: "r", From: 2, To: 6})
	require.Error(t, err)
	require.Contains(t, err.Error(), WaitingForBroker+": nats: timeout")
	require.Equal(t, msgIDs("T2", "T3", "T4", "T5"), fb.sent())
	require.EqualValues(t, 4, count(t, conn, "SELECT next_seq FROM outbox_acked WHERE run_id = 'r' AND from_seq = 2"))
	pending, err := db.PendingOutbox(ctx, "r")
	require.NoError(t, err)
	require.EqualValues(t, 3, pending, "T1 of the other chunk, T4 and T5")
	require.Len(t, streamMessages(t, broker.JetStream()), 3, "T2, T3 and T4")

	// The retry sends the slice again, not what was acknowledged before it.
	fb.failAt = nil
	out, err := d.Publish(ctx, ChunkInput{RunID: "r", From: 2, To: 6})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Published: 2}, out)
	require.Equal(t, msgIDs("T4", "T5"), fb.sent())
	require.Len(t, streamMessages(t, broker.JetStream()), 4, "the stream dropped T4 sent again")
	require.EqualValues(t, 1, count(t, conn, "SELECT count(*) FROM outbox_runs"), "a chunk is left")
	pending, err = db.PendingOutbox(ctx, "r")
	require.NoError(t, err)
	require.EqualValues(t, 1, pending)

	// Published again, the chunk sends nothing.
	out, err = d.Publish(ctx, ChunkInput{RunID: "r", From: 2, To: 6})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{}, out)
	require.Empty(t, fb.sent())

	// The last chunk purges the run's rows.
	out, err = d.Publish(ctx, ChunkInput{RunID: "r", From: 1, To: 2})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Published: 1}, out)
	require.Equal(t, msgIDs("T1"), fb.sent())
	require.Zero(t, count(t, conn, "SELECT count(*) FROM outbox_runs"))
	require.Zero(t, count(t, conn, "SELECT count(*) FROM outbox_acked"))
	pending, err = db.PendingOutbox(ctx, "r")
	require.NoError(t, err)
	require.Zero(t, pending)
	for _, c := range []ChunkInput{{RunID: "r", From: 1, To: 2}, {RunID: "r", From: 2, To: 6}} {
		out, err = d.Publish(ctx, c)
		require.NoError(t, err)
		require.Equal(t, ChunkResult{}, out)
	}
	require.Empty(t, fb.sent())
	require.Len(t, streamMessages(t, broker.JetStream()), 5)
}

// When a slice fails while a later one was acknowledged (two are in flight), the chunk's
// acknowledged line stays before the failed slice: the retry sends both again.
func TestPublishByRunAdvancesOverAcknowledgedSlicesInOrder(t *testing.T) {
	ctx := context.Background()
	db, conn := openPostgres(t)
	_, broker := openBroker(t)
	ingestForDelivery(t, db, "r", deliveryFile)
	fb := &selectiveBroker{b: broker, failAt: map[string]bool{TransactionMsgID("acme", "T3", 1): true}}
	// Without Send: the slices are published and acknowledged two at a time, in any order.
	d := &Delivery{DB: db, Broker: publishOnly{fb}, Slice: 1}
	_, err := d.Publish(ctx, ChunkInput{RunID: "r", From: 1, To: 6})
	require.Error(t, err)
	sent := fb.sent()
	require.Contains(t, sent, TransactionMsgID("acme", "T3", 1))
	next := count(t, conn, "SELECT coalesce((SELECT next_seq FROM outbox_acked WHERE run_id = 'r' AND from_seq = 1), 1)")
	require.LessOrEqual(t, next, int64(3), "not past the failed slice")

	fb.failAt = nil
	out, err := d.Publish(ctx, ChunkInput{RunID: "r", From: 1, To: 6})
	require.NoError(t, err)
	require.EqualValues(t, 6-next, out.Published)
	require.ElementsMatch(t, msgIDs("T1", "T2", "T3", "T4", "T5")[next-1:], fb.sent())
	require.Zero(t, count(t, conn, "SELECT count(*) FROM outbox_runs"))
	require.Len(t, streamMessages(t, broker.JetStream()), 5)
}

// publishOnly hides a Publisher's Send.
type publishOnly struct{ p Publisher }

func (p publishOnly) Publish(ctx context.Context, msgs []natsjs.Msg) ([]int, error) {
	return p.p.Publish(ctx, msgs)
}

// A run settled before outbox_runs existed, with one outbox row per message, is still published
// from its rows, which are deleted once acknowledged.
func TestPublishOutboxRowsOfARunSettledBefore(t *testing.T) {
	ctx := context.Background()
	db, conn := openPostgres(t)
	_, broker := openBroker(t)
	res := ingestTagged(t, db, "r", deliveryFile, false)
	require.Zero(t, res.Pending)
	_, err := conn.Exec(ctx, "INSERT INTO outbox (txn_key, version, run_id) SELECT key, 1, first_run_id FROM transactions")
	require.NoError(t, err)
	fb := &selectiveBroker{b: broker}
	d := &Delivery{DB: db, Broker: fb, Slice: 2}
	out, err := d.Publish(ctx, ChunkInput{RunID: "r", From: 1, To: 6})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Published: 5}, out)
	require.Equal(t, msgIDs("T1", "T2", "T3", "T4", "T5"), fb.sent())
	require.Zero(t, count(t, conn, "SELECT count(*) FROM outbox"))
	out, err = d.Publish(ctx, ChunkInput{RunID: "r", From: 1, To: 6})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{}, out)
	require.Len(t, streamMessages(t, broker.JetStream()), 5)
}
