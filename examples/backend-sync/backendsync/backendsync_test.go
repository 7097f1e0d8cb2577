package backendsync

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSyncAppliesMessages(t *testing.T) {
	e := newEnv(t)
	e.publish(tx{Account: "acme", ID: "T1", Date: str("2026-01-31"), Amount: "-12.50", Wording: "TAXI PARIS",
		Tag: str("TAXI"), Annotation: str("SMALL EXPENSE"), RunID: "txflow-acme-1", Version: 1})
	e.publish(tx{Account: "acme", ID: "T2", Amount: "2000000.00", Wording: "BIG",
		Error: str("amount_too_high"), RunID: "txflow-acme-1", Version: 1})
	e.publish(tx{Account: "default", ID: "T1", Amount: "0.00", Wording: "", RunID: "txflow-1", Version: 1})
	// A run notice on the same stream is not this consumer's business.
	e.publishRaw("txflow.runs.completed", []byte(`{"run_id":"txflow-1"}`), "run-txflow-1-1-completed")

	st := e.sync()
	assert.Equal(t, Stats{Messages: 3, Applied: 3}, st)

	got := e.rows()
	require.Len(t, got, 3)
	r := got["acme/T1"]
	assert.Equal(t, row{Date: str("2026-01-31"), Amount: "-12.50", Wording: "TAXI PARIS", Tag: str("TAXI"),
		Annotation: str("SMALL EXPENSE"), RunID: "txflow-acme-1", Version: 1, UpdatedAt: r.UpdatedAt}, r)
	r = got["acme/T2"]
	assert.Equal(t, row{Amount: "2000000.00", Wording: "BIG", Error: str("amount_too_high"), RunID: "txflow-acme-1",
		Version: 1, UpdatedAt: r.UpdatedAt}, r)
	r = got["default/T1"]
	assert.Equal(t, row{Amount: "0.00", RunID: "txflow-1", Version: 1, UpdatedAt: r.UpdatedAt}, r)

	info := e.consumerInfo()
	assert.Equal(t, FilterSubject, info.Config.FilterSubject)
	assert.Equal(t, jetstream.AckExplicitPolicy, info.Config.AckPolicy)
	assert.Equal(t, DefaultMaxAckPending, info.Config.MaxAckPending)
	assert.Equal(t, uint64(3), info.AckFloor.Consumer, "every message acked")
	assert.Zero(t, info.NumAckPending)

	// Nothing new: nothing fetched, nothing written.
	assert.Equal(t, Stats{}, e.sync())
}

func TestOlderVersionDoesNotOverwriteNewer(t *testing.T) {
	e := newEnv(t)
	v := func(version int, tag string) tx {
		return tx{Account: "acme", ID: "T1", Amount: fmt.Sprintf("%d.00", version), Wording: "W",
			Tag: str(tag), RunID: fmt.Sprintf("run-%d", version), Version: version}
	}
	e.publish(v(2, "NEW"))
	assert.Equal(t, Stats{Messages: 1, Applied: 1}, e.sync())

	// Version 1 arrives late (a redelivery, or an older result published
	// after a newer one): acked, nothing written.
	e.publish(v(1, "OLD"))
	assert.Equal(t, Stats{Messages: 1, Stale: 1}, e.sync())
	r := e.rows()["acme/T1"]
	assert.Equal(t, 2, r.Version)
	assert.Equal(t, "NEW", *r.Tag)
	assert.Equal(t, "2.00", r.Amount)

	// Versions 4, 3 and 2 in one batch: the newest wins. (Version 2 again is
	// a re-send: JetStream drops it by its Nats-Msg-Id.)
	e.publish(v(4, "NEWEST"))
	e.publish(v(3, "OLDER"))
	require.True(t, e.publish(v(2, "NEW")).Duplicate)
	e.publishRaw("txflow.transactions.acme", []byte(`{"account":"acme","id":"T1","amount":"2.00","wording":"W",
		"tag":"NEW","annotation":null,"error":null,"run_id":"run-2","version":2}`), "")
	assert.Equal(t, Stats{Messages: 3, Applied: 1, Stale: 2}, e.sync())
	r = e.rows()["acme/T1"]
	assert.Equal(t, 4, r.Version)
	assert.Equal(t, "NEWEST", *r.Tag)
	assert.Equal(t, "run-4", r.RunID)
	assert.Zero(t, e.consumerInfo().NumAckPending)
}

func TestMessagePublishedTwiceIsAppliedOnce(t *testing.T) {
	e := newEnv(t)
	m := tx{Account: "acme", ID: "T1", Amount: "-1.00", Wording: "W", RunID: "run-1", Version: 1}
	require.False(t, e.publish(m).Duplicate)
	// Within the duplicate window JetStream drops the re-send by its Nats-Msg-Id.
	require.True(t, e.publish(m).Duplicate)
	assert.Equal(t, Stats{Messages: 1, Applied: 1}, e.sync())
	first := e.rows()["acme/T1"]

	// After the window (here: without the header) it reaches the consumer,
	// which drops it by (account, id, version).
	body := []byte(`{"account":"acme","id":"T1","amount":"-1.00","wording":"W","tag":null,"annotation":null,"error":null,"run_id":"run-1","version":1}`)
	require.False(t, e.publishRaw("txflow.transactions.acme", body, "").Duplicate)
	assert.Equal(t, Stats{Messages: 1, Stale: 1}, e.sync())
	assert.Equal(t, first, e.rows()["acme/T1"], "the row was not written again")
}

func TestMalformedMessageIsTerminated(t *testing.T) {
	e := newEnv(t)
	good := func(id string) tx {
		return tx{Account: "acme", ID: id, Amount: "1.00", Wording: "W", RunID: "run-1", Version: 1}
	}
	e.publish(good("A"))
	bad := []string{
		`not json`,
		`{"account":"acme","id":"B","amount":"1.00","wording":"W","run_id":"run-1"}`,                   // no version
		`{"account":"acme","id":"C","amount":"12,50","wording":"W","run_id":"run-1","version":1}`,      // not a decimal
		`{"account":"acme","id":"D","amount":"1.00","wording":"W\u0000","run_id":"run-1","version":1}`, // NUL
		`{"account":"acme","id":"E","amount":"1.00","wording":"W","date":"31/01/2026","run_id":"run-1","version":1}`,
	}
	for i, b := range bad {
		e.publishRaw("txflow.transactions.acme", []byte(b), fmt.Sprintf("bad-%d", i))
	}
	e.publish(good("F"))

	st := e.sync()
	assert.Equal(t, Stats{Messages: 7, Applied: 2, Terminated: 5}, st)
	got := e.rows()
	assert.Len(t, got, 2)
	assert.Contains(t, got, "acme/A")
	assert.Contains(t, got, "acme/F")
	info := e.consumerInfo()
	assert.Zero(t, info.NumAckPending, "terminated messages are not redelivered")
	assert.Equal(t, uint64(7), info.AckFloor.Consumer)

	// They stay terminated: a later sync sees only new messages.
	e.publish(good("G"))
	assert.Equal(t, Stats{Messages: 1, Applied: 1}, e.sync())
}

// A batch applied but not acked (the consumer died between the commit and
// the ack) is delivered again, and applying it again changes nothing.
func TestCrashBeforeAckRedeliversHarmlessly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	opts := e.opts()
	opts.AckWait = time.Second
	s, err := Open(ctx, e.js, e.db, opts)
	require.NoError(t, err)
	e.publish(tx{Account: "acme", ID: "T1", Amount: "1.00", Wording: "W", RunID: "run-1", Version: 1})
	e.publish(tx{Account: "acme", ID: "T2", Amount: "2.00", Wording: "W", RunID: "run-1", Version: 1})

	// What a batch does, up to the commit. A fetch returns what the consumer has at hand, maybe
	// the first message alone: fetch until both are in.
	var msgs []jetstream.Msg
	for deadline := time.Now().Add(10 * time.Second); len(msgs) < 2 && time.Now().Before(deadline); {
		more, err := s.fetch(ctx)
		require.NoError(t, err)
		msgs = append(msgs, more...)
	}
	require.Len(t, msgs, 2)
	var rows []Message
	for _, msg := range msgs {
		m, err := ParseMessage(msg.Data())
		require.NoError(t, err)
		rows = append(rows, m)
	}
	n, err := apply(ctx, e.db, rows)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	before := e.rows()

	// A new process: after the ack wait the same messages come back.
	st, err := Sync(ctx, e.js, e.db, opts)
	require.NoError(t, err)
	assert.Equal(t, Stats{Messages: 2, Stale: 2}, st)
	assert.Equal(t, before, e.rows())
	info := e.consumerInfo()
	assert.Equal(t, uint64(2), info.AckFloor.Stream)
	assert.Zero(t, info.NumAckPending)
}

func TestRunResumesFromDurablePosition(t *testing.T) {
	e := newEnv(t)
	cfg := Config{NatsURL: e.url, DatabaseURL: e.dbURL, Options: e.opts()}
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		return func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not stop")
			}
		}
	}
	waitRows := func(want int, cond func(map[string]row) bool) {
		t.Helper()
		require.Eventually(t, func() bool {
			got := e.rowsOrNil()
			return len(got) == want && cond(got)
		}, 30*time.Second, 50*time.Millisecond)
	}
	all := func(map[string]row) bool { return true }

	stop := start()
	for i := range 3 {
		e.publish(tx{Account: "acme", ID: fmt.Sprint("T", i), Amount: "1.00", Wording: "W", RunID: "run-1", Version: 1})
	}
	waitRows(3, all)
	stop()

	// Published while no consumer runs.
	e.publish(tx{Account: "acme", ID: "T0", Amount: "9.00", Wording: "W", RunID: "run-2", Version: 2})
	for i := 3; i < 5; i++ {
		e.publish(tx{Account: "acme", ID: fmt.Sprint("T", i), Amount: "1.00", Wording: "W", RunID: "run-2", Version: 1})
	}
	stop = start()
	waitRows(5, func(got map[string]row) bool { return got["acme/T0"].Version == 2 })
	stop()
	assert.Equal(t, "9.00", e.rows()["acme/T0"].Amount)
	info := e.consumerInfo()
	assert.Equal(t, uint64(6), info.AckFloor.Stream, "every message acked")
	assert.Zero(t, info.NumAckPending, "nothing awaiting an ack")
	assert.Zero(t, info.NumPending, "nothing left to deliver")
	// A pull request still open on the server when the first Run stopped may have taken a
	// message published after it: that message is delivered again once its ack wait is over,
	// and applied once (at least once delivery, the version check): so Delivered may exceed 6.
}

// rowsOrNil is rows without failing while the table does not exist yet.
func (e *env) rowsOrNil() map[string]row {
	var exists bool
	err := e.db.QueryRow(context.Background(), "SELECT to_regclass('backend_transactions') IS NOT NULL").Scan(&exists)
	if err != nil || !exists {
		return nil
	}
	return e.rows()
}

// The database becomes unavailable: the batch is not acked, and it is
// applied once the database is back.
func TestDatabaseUnavailableMessagesAppliedAfterReturn(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, err := Open(ctx, e.js, e.db, e.opts())
	require.NoError(t, err)
	for i := range 3 {
		e.publish(tx{Account: "acme", ID: fmt.Sprint("T", i), Amount: "1.00", Wording: "W", RunID: "run-1", Version: 1})
	}

	// Refuse new connections to the database and end the existing ones, from
	// the server's maintenance database.
	u, err := url.Parse(e.dbURL)
	require.NoError(t, err)
	dbName := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer admin.Close(ctx)
	ident := pgx.Identifier{dbName}.Sanitize()
	_, err = admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbName)
	require.NoError(t, err)

	st, err := s.Batch(ctx)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrMalformed))
	assert.Equal(t, Stats{Messages: 3}, st)
	info := e.consumerInfo()
	assert.Zero(t, info.AckFloor.Consumer, "nothing acked")
	assert.Equal(t, 3, info.NumAckPending)

	// Still down: the messages come back (after RetryDelay) and fail again.
	st, err = s.Batch(ctx)
	require.Error(t, err)
	assert.Positive(t, st.Messages)
	assert.Zero(t, e.consumerInfo().AckFloor.Consumer, "nothing acked")

	_, err = admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS true")
	require.NoError(t, err)
	st, err = s.Drain(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 3, st.Applied)
	assert.Len(t, e.rows(), 3)
	info = e.consumerInfo()
	assert.Equal(t, uint64(3), info.AckFloor.Stream)
	assert.Zero(t, info.NumAckPending)
}

func TestParseMessage(t *testing.T) {
	m, err := ParseMessage([]byte(`{"account":"acme","id":"T1","date":"2026-01-31","amount":"-12.50","wording":"TAXI PARIS",
		"tag":"TAXI","annotation":"SMALL EXPENSE","error":null,"run_id":"txflow-acme-1b2666569dcef9c4","version":1,"later":"ignored"}`))
	require.NoError(t, err)
	assert.Equal(t, Message{Account: "acme", ID: "T1", Date: str("2026-01-31"), Amount: "-12.50", Wording: "TAXI PARIS",
		Tag: str("TAXI"), Annotation: str("SMALL EXPENSE"), RunID: "txflow-acme-1b2666569dcef9c4", Version: 1}, m)

	const ok = `"account":"a","id":"i","amount":"1.00","wording":"w","run_id":"r"`
	for name, body := range map[string]string{
		"not json":         `{`,
		"array":            `[]`,
		"no account":       `{"id":"i","amount":"1.00","wording":"w","run_id":"r","version":1}`,
		"empty id":         `{"account":"a","id":"","amount":"1.00","wording":"w","run_id":"r","version":1}`,
		"no wording":       `{"account":"a","id":"i","amount":"1.00","run_id":"r","version":1}`,
		"no run_id":        `{"account":"a","id":"i","amount":"1.00","wording":"w","version":1}`,
		"number amount":    `{"account":"a","id":"i","amount":1.00,"wording":"w","run_id":"r","version":1}`,
		"exponent":         `{"account":"a","id":"i","amount":"1e5","wording":"w","run_id":"r","version":1}`,
		"NaN":              `{"account":"a","id":"i","amount":"NaN","wording":"w","run_id":"r","version":1}`,
		"huge amount":      `{"account":"a","id":"i","amount":"` + strings.Repeat("9", maxIntegerDigits+1) + `","wording":"w","run_id":"r","version":1}`,
		"bad date":         `{` + ok + `,"date":"2026-02-30","version":1}`,
		"version 0":        `{` + ok + `,"version":0}`,
		"version string":   `{` + ok + `,"version":"1"}`,
		"version fraction": `{` + ok + `,"version":1.5}`,
		"version too big":  `{` + ok + `,"version":2147483648}`,
		"tag not string":   `{` + ok + `,"tag":5,"version":1}`,
		"NUL in tag":       `{` + ok + `,"tag":"a\u0000","version":1}`,
	} {
		_, err := ParseMessage([]byte(body))
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
	_, err = ParseMessage([]byte(`{` + ok + `,"date":null,"tag":null,"version":2147483647}`))
	assert.NoError(t, err)
}

// Started before txflow's worker has created the stream, Run waits for it.
func TestRunWaitsForTheStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.stream.CachedInfo().Config
	require.NoError(t, e.js.DeleteStream(ctx, cfg.Name))

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, Config{NatsURL: e.url, DatabaseURL: e.dbURL, Options: e.opts()}) }()
	time.Sleep(300 * time.Millisecond) // a few failed attempts

	_, err := e.js.CreateStream(ctx, cfg)
	require.NoError(t, err)
	e.publish(tx{Account: "acme", ID: "T1", Amount: "1.00", Wording: "W", RunID: "run-1", Version: 1})
	require.Eventually(t, func() bool { return len(e.rowsOrNil()) == 1 }, 30*time.Second, 50*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}
