package e2e

// Delivery of results to NATS JetStream, end to end: a real embedded NATS server, the real
// worker (in this process or as a process killed mid-publish), a real PostgreSQL.

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devnats"
	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/examples/backend-sync/backendsync"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// Rows and chunk size of the delivery tests' file: four publish chunks.
const (
	deliveryRows  = 20_000
	deliveryChunk = 5_000
)

// actPublish is the Publish activity's type.
const actPublish = "Publish"

// deliveryEnv is workerEnv with delivery to the NATS server at natsURL on.
func deliveryEnv(srv *devtemporal.Server, dbURL, input, output, natsURL string) config.Map {
	env := workerEnv(srv, dbURL, input, output)
	env[devstack.NATSURLVariable] = natsURL
	return env
}

// streamMsg is one message of the stream, as the tests read it back.
type streamMsg struct {
	Subject string
	MsgID   string
	Data    []byte
}

// readStream returns every message of the stream TXFLOW on the server at url, in order.
func readStream(t *testing.T, url string) []streamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx, devstack.DefaultStream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	total := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	out := make([]streamMsg, 0, total)
	for len(out) < total {
		batch, err := cons.Fetch(min(1000, total-len(out)), jetstream.FetchMaxWait(10*time.Second))
		require.NoError(t, err)
		n := 0
		for m := range batch.Messages() {
			out = append(out, streamMsg{Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
			n++
		}
		require.NoError(t, batch.Error())
		require.NotZero(t, n, "the stream holds %d messages, %d read", total, len(out))
	}
	return out
}

// streamCount is how many transaction messages the stream holds, 0 before it exists.
func streamCount(t *testing.T, url string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := devstack.CountStream(ctx, url, devstack.DefaultStream)
	if err != nil {
		return 0
	}
	return c.Transactions
}

// outputRows reads a run's output_transactions.csv, by id.
func outputRows(t *testing.T, path string) (header []string, rows map[string][]string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	rows = make(map[string][]string, len(recs)-1)
	for _, r := range recs[1:] {
		rows[r[0]] = r
	}
	require.Len(t, rows, len(recs)-1, "ids repeat in %s", path)
	return recs[0], rows
}

// nullable is a CSV field as the message carries it: null when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// requireDelivered checks the stream against the run's output file: exactly one message per
// transaction of the file (by Nats-Msg-Id and by account and id), on its account's subject, with
// the message id of the contract and a body that says what the output says. It returns the
// number of run notices of each kind.
func requireDelivered(t *testing.T, msgs []streamMsg, outputCSV, account, runID string) map[string]int {
	t.Helper()
	header, rows := outputRows(t, outputCSV)
	require.Equal(t, []string{"id", "amount", "wording", "tag", "annotation", "error"}, header)
	byMsgID := map[string]bool{}
	byKey := map[string]bool{}
	notices := map[string]int{}
	keys := []string{"account", "amount", "annotation", "error", "id", "run_id", "tag", "version", "wording"}
	for _, m := range msgs {
		if rest, ok := strings.CutPrefix(m.Subject, "txflow.runs."); ok {
			var n activities.RunNotice
			require.NoError(t, json.Unmarshal(m.Data, &n), "notice %s", m.Data)
			require.Equal(t, "txflow.run."+rest, n.Kind, "notice on %s", m.Subject)
			require.Equal(t, fmt.Sprintf("run-%s-%s-%s", n.RunID, n.Attempt, n.Kind), m.MsgID)
			notices[n.Kind]++
			continue
		}
		require.Equal(t, "txflow.transactions."+account, m.Subject)
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(m.Data, &fields), "message %s", m.Data)
		got := make([]string, 0, len(fields))
		for k := range fields {
			got = append(got, k)
		}
		slices.Sort(got)
		require.Equal(t, keys, got, "keys of %s (no date: the generated file has none)", m.Data)
		var body activities.TransactionMessage
		require.NoError(t, json.Unmarshal(m.Data, &body))

		require.False(t, byMsgID[m.MsgID], "message id %s twice", m.MsgID)
		byMsgID[m.MsgID] = true
		key := body.Account + "\x1f" + body.ID
		require.False(t, byKey[key], "transaction %s/%s twice", body.Account, body.ID)
		byKey[key] = true
		sum := sha256.Sum256([]byte(key))
		require.Equal(t, "tx-"+hex.EncodeToString(sum[:])[:16]+"-v1", m.MsgID)

		row, ok := rows[body.ID]
		require.True(t, ok, "message of %s, which the output does not have", body.ID)
		require.Equal(t, account, body.Account)
		require.Equal(t, runID, body.RunID)
		require.EqualValues(t, 1, body.Version)
		require.Equal(t, row[1], body.Amount, "amount of %s", body.ID)
		require.Equal(t, row[2], body.Wording, "wording of %s", body.ID)
		require.Equal(t, nullable(row[3]), body.Tag, "tag of %s", body.ID)
		require.Equal(t, nullable(row[4]), body.Annotation, "annotation of %s", body.ID)
		require.Equal(t, nullable(row[5]), body.Error, "error of %s", body.ID)
	}
	require.Len(t, byMsgID, len(rows), "one message per transaction of the output")
	require.Len(t, byKey, len(rows))
	return notices
}

// lockOutboxAfter holds locks on what records the run's messages delivered from line sequence
// `from` on (the chunks' acknowledged lines, outbox_acked, for a run delivered by range of
// lines; its outbox rows otherwise), so that Publish publishes those lines' messages but cannot
// record them delivered, until release. Reads are not blocked: only the writes that record
// messages delivered wait.
func lockOutboxAfter(t *testing.T, dbURL, runID string, from int64) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	var n int64
	// An uncommitted row for every line a chunk may start at: recording a chunk's line waits
	// for it.
	require.NoError(t, tx.QueryRow(ctx, `
WITH locked AS (
  INSERT INTO outbox_acked (run_id, from_seq, next_seq)
  SELECT $1, s, s FROM outbox_runs r,
       generate_series((SELECT min(seq) FROM run_lines WHERE run_id = $1) + $2, r.max_seq) s
  WHERE r.run_id = $1
  ON CONFLICT DO NOTHING
  RETURNING 1)
SELECT count(*) FROM locked`, runID, from).Scan(&n))
	if n == 0 {
		require.NoError(t, tx.QueryRow(ctx, `
WITH locked AS (
  SELECT 1 FROM outbox o JOIN run_lines rl ON rl.txn_key = o.txn_key AND rl.run_id = o.run_id
  WHERE rl.run_id = $1 AND rl.seq >= (SELECT min(seq) FROM run_lines WHERE run_id = $1) + $2
  FOR UPDATE OF o)
SELECT count(*) FROM locked`, runID, from).Scan(&n))
	}
	require.Positive(t, n, "nothing to lock")
	t.Logf("locked %d rows", n)
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// lockWaiters counts the database sessions waiting for a lock.
func lockWaiters(t *testing.T, dbURL string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&n))
	return n
}

// terminateLockWaiters ends the database sessions waiting for a lock: those of a worker killed
// while it waited, which PostgreSQL would otherwise only notice once the lock is granted.
func terminateLockWaiters(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&n))
	require.Positive(t, n, "no session of the killed worker waited to mark its messages delivered")
	t.Logf("terminated %d session(s) of the killed worker", n)
}

// stageDone waits until the run's stage has completed.
func stageDone(t *testing.T, c client.Client, run client.WorkflowRun, stage string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, stage+" to complete", func() bool {
		s, err := progress(c, run)
		return err == nil && stageOf(s, stage).Status == workflows.StatusCompleted
	})
}

// TestDeliveryPublishesEachNewTransactionOnce runs a file of new transactions with delivery on:
// the stream then holds exactly one message per transaction, saying what the output file says,
// and the run's completion notice; running the same file again publishes no transaction. The
// example consumer, backend-sync, applies the stream to a backend table equal to the output.
func TestDeliveryPublishesEachNewTransactionOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a generated file with NATS, skipped with -short")
	}
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	ns := devnats.StartForTest(t)
	c := dial(t, srv)
	input, output, db := t.TempDir(), t.TempDir(), testdb.URL(t)
	name := generate(t, input, deliveryRows, 21)
	runWorker(t, deliveryEnv(srv, db, input, output, ns.URL()))

	s := waitRun(t, startRun(t, c, input, name, deliveryChunk), 3*time.Minute)
	require.EqualValues(t, deliveryRows, s.New)
	require.EqualValues(t, deliveryRows, s.Published, "summary.json's published count")
	publish := stageOf(s, workflows.StagePublish)
	require.Equal(t, workflows.StatusCompleted, publish.Status)
	require.EqualValues(t, deliveryRows, publish.Total)
	require.EqualValues(t, publish.Total, publish.Done)
	outputCSV := filepath.Join(output, s.RunID, "output_transactions.csv")

	msgs := readStream(t, ns.URL())
	notices := requireDelivered(t, msgs, outputCSV, "default", s.RunID)
	require.Equal(t, map[string]int{activities.NoticeRunCompleted: 1}, notices)
	require.Len(t, msgs, deliveryRows+1, "transactions and the run's notice")

	// The run's history, with its Publish stage, replays against the current code; it is one of
	// the histories workflows.TestReplay replays (TXFLOW_RECORD_HISTORIES=1 rewrites it).
	hist := fetchHistory(t, c, s.RunID, "")
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.ProcessFile)
	replayer.RegisterWorkflow(workflows.Notify)
	exec := workflow.Execution{ID: s.RunID,
		RunID: hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()}
	require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(nil, hist, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}))
	if recordHistories {
		saveHistory(t, hist, "processfile_publish_alongside_history.json")
	}

	// The same file again: no new transaction, no transaction message; its own notice only.
	again := waitRun(t, startRun(t, c, input, name, deliveryChunk), 3*time.Minute)
	require.EqualValues(t, 0, again.New)
	require.EqualValues(t, 0, again.Published)
	msgs = readStream(t, ns.URL())
	require.Equal(t, map[string]int{activities.NoticeRunCompleted: 2}, requireDelivered(t, msgs, outputCSV, "default", s.RunID))
	require.Zero(t, pendingOutbox(t, db), "outbox rows left")

	t.Run("backend-sync applies the stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		nc, err := nats.Connect(ns.URL())
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		backendDB := testdb.URL(t)
		pool, err := pgxpool.New(ctx, backendDB)
		require.NoError(t, err)
		defer pool.Close()
		st, err := backendsync.Sync(ctx, js, pool, backendsync.Options{Stream: devstack.DefaultStream})
		require.NoError(t, err)
		t.Logf("backend-sync: %+v", st)
		requireBackendTable(t, ctx, pool, outputCSV, "default")

		// A second pass finds nothing new and changes nothing.
		st, err = backendsync.Sync(ctx, js, pool, backendsync.Options{Stream: devstack.DefaultStream})
		require.NoError(t, err)
		require.Zero(t, st.Applied, "applied again: %+v", st)
		requireBackendTable(t, ctx, pool, outputCSV, "default")
	})
}

// requireBackendTable checks that backend_transactions holds exactly the output file's rows.
func requireBackendTable(t *testing.T, ctx context.Context, pool *pgxpool.Pool, outputCSV, account string) {
	t.Helper()
	_, want := outputRows(t, outputCSV)
	rows, err := pool.Query(ctx, `SELECT account, id, amount::text, wording, coalesce(tag, ''), coalesce(annotation, ''),
coalesce(error, ''), version FROM backend_transactions`)
	require.NoError(t, err)
	got := map[string][]string{}
	for rows.Next() {
		var acc, id, amount, wording, tag, annotation, errCode string
		var version int64
		require.NoError(t, rows.Scan(&acc, &id, &amount, &wording, &tag, &annotation, &errCode, &version))
		require.Equal(t, account, acc)
		require.EqualValues(t, 1, version)
		got[id] = []string{id, amount, wording, tag, annotation, errCode}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(want), len(got), "backend rows")
	for id, w := range want {
		require.Equal(t, w, got[id], "backend row of %s", id)
	}
}

// pendingOutbox counts the messages not delivered yet (outbox rows, and the lines of the runs
// delivered by range not acknowledged) and the outbox_runs rows left.
func pendingOutbox(t *testing.T, dbURL string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int64
	require.NoError(t, conn.QueryRow(ctx, `
SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM outbox_runs)
     + (SELECT count(*)
        FROM outbox_runs r
        JOIN run_lines rl ON rl.run_id = r.run_id AND rl.seq <= r.max_seq
        WHERE (rl.txn_key >> 32) = r.num
          AND coalesce((SELECT a.next_seq FROM outbox_acked a
                        WHERE a.run_id = r.run_id AND a.from_seq <= rl.seq
                        ORDER BY a.from_seq DESC LIMIT 1), 0) <= rl.seq)`).Scan(&n))
	return n
}

// TestDeliveryWorkerKilledDuringPublish kills (SIGKILL) the worker process while Publish has
// published messages it has not marked delivered yet, and starts another: the new worker
// publishes them again, JetStream drops the re-sends by their Nats-Msg-Id, and the stream holds
// exactly one message per transaction.
func TestDeliveryWorkerKilledDuringPublish(t *testing.T) {
	bin := buildWorker(t)
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	ns := devnats.StartForTest(t)
	c := dial(t, srv)
	input, output, db := t.TempDir(), t.TempDir(), testdb.URL(t)
	name := generate(t, input, deliveryRows, 22)
	env := deliveryEnv(srv, db, input, output, ns.URL())
	w := startWorker(t, c, bin, env, nil)
	run := startRun(t, c, input, name, deliveryChunk)

	// Once ingested, the lines after the first chunk can be published but not marked delivered.
	stageDone(t, c, run, workflows.StageIngest, 2*time.Minute)
	release := lockOutboxAfter(t, db, run.GetID(), deliveryChunk)
	// The first chunk delivered, the next ones (two in flight) published and stuck.
	eventually(t, 2*time.Minute, "messages published but not marked delivered", func() bool {
		return streamCount(t, ns.URL()) >= 2*deliveryChunk && lockWaiters(t, db) > 0 && startedActivity(c, run, actPublish) != nil
	})
	n := streamCount(t, ns.URL())
	require.Less(t, n, uint64(deliveryRows), "every message was published before the kill")
	t.Logf("killing the worker with %d of %d messages in the stream", n, deliveryRows)
	w.Kill()
	terminateLockWaiters(t, db)
	// Messages in the stream not recorded delivered: the next worker sends them again.
	require.Greater(t, pendingOutbox(t, db), int64(deliveryRows)-int64(n), "no message to send again")
	release()
	w = startWorker(t, c, bin, env, nil)

	s := waitRun(t, run, 3*time.Minute)
	require.EqualValues(t, deliveryRows, s.New)
	att := maxAttempts(t, c, run)
	t.Logf("highest attempts: %v", att)
	require.GreaterOrEqual(t, att[actPublish], int32(2), "no Publish chunk was retried after the kill")
	msgs := readStream(t, ns.URL())
	requireDelivered(t, msgs, filepath.Join(output, s.RunID, "output_transactions.csv"), "default", s.RunID)
	require.Len(t, msgs, deliveryRows+1, "the stream holds a duplicate")
	require.Zero(t, pendingOutbox(t, db), "outbox rows left")
	require.NoError(t, w.Stop(45*time.Second))
}

// TestDeliveryBrokerDown stops NATS in the middle of a run, before its publish stage or during
// it, and starts it again later on the same port and store: the run writes its outputs, waits
// in its publish stage (the progress query says so), and completes once NATS is back, with
// exactly one message per transaction in the stream.
func TestDeliveryBrokerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a generated file with NATS stopped and started, skipped with -short")
	}
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	input := t.TempDir()
	name := generate(t, input, deliveryRows, 23)

	// waitsForBroker checks that the run waits in its publish stage with its outputs written,
	// then starts NATS again and checks what the stream holds once the run completed.
	waitsForBroker := func(t *testing.T, ns *devnats.Server, run client.WorkflowRun, output string) {
		// The publish stage may wait before the outputs are written: it runs alongside Tag and
		// Annotate.
		eventually(t, 2*time.Minute, "the publish stage to wait for the broker, the outputs written", func() bool {
			s, err := progress(c, run)
			p := stageOf(s, workflows.StagePublish)
			return err == nil && p.Status == workflows.StatusRunning &&
				strings.Contains(p.Phase+" "+p.Error, activities.WaitingForBroker) &&
				stageOf(s, workflows.StageDump).Status == workflows.StatusCompleted
		})
		s, err := progress(c, run)
		require.NoError(t, err)
		require.Equal(t, workflows.StatusRunning, s.Status)
		require.Equal(t, workflows.StatusCompleted, stageOf(s, workflows.StageDump).Status)
		out := filepath.Join(output, run.GetID(), "output_transactions.csv")
		require.FileExists(t, out, "the outputs wait for the broker")
		time.Sleep(2 * time.Second) // a few more attempts against the stopped broker
		require.NoError(t, ns.Restart())
		t.Log("NATS started again")

		done := waitRun(t, run, 3*time.Minute)
		require.EqualValues(t, deliveryRows, done.Published)
		msgs := readStream(t, ns.URL())
		notices := requireDelivered(t, msgs, out, "default", done.RunID)
		require.Equal(t, map[string]int{activities.NoticeRunCompleted: 1}, notices)
		require.Len(t, msgs, deliveryRows+1)
	}

	t.Run("before publish", func(t *testing.T) {
		ns := devnats.StartForTest(t)
		output, db := t.TempDir(), testdb.URL(t)
		stop := runWorker(t, deliveryEnv(srv, db, input, output, ns.URL()))
		defer stop()
		run := startRun(t, c, input, name, deliveryChunk)
		stageDone(t, c, run, workflows.StageIngest, 2*time.Minute)
		ns.Stop()
		t.Log("NATS stopped after ingest")
		waitsForBroker(t, ns, run, output)
	})

	t.Run("during publish", func(t *testing.T) {
		ns := devnats.StartForTest(t)
		output, db := t.TempDir(), testdb.URL(t)
		stop := runWorker(t, deliveryEnv(srv, db, input, output, ns.URL()))
		defer stop()
		run := startRun(t, c, input, name, deliveryChunk)
		stageDone(t, c, run, workflows.StageIngest, 2*time.Minute)
		release := lockOutboxAfter(t, db, run.GetID(), deliveryChunk)
		eventually(t, 2*time.Minute, "messages published but not marked delivered", func() bool {
			return streamCount(t, ns.URL()) >= 2*deliveryChunk && lockWaiters(t, db) > 0
		})
		n := streamCount(t, ns.URL())
		require.Less(t, n, uint64(deliveryRows))
		ns.Stop()
		t.Logf("NATS stopped with %d of %d messages in the stream", n, deliveryRows)
		release()
		waitsForBroker(t, ns, run, output)
	})
}
