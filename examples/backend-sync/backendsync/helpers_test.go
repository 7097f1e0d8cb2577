package backendsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// env is one test's embedded NATS server (JetStream in a temp dir) with
// txflow's stream, and a fresh PostgreSQL database.
type env struct {
	t      *testing.T
	url    string
	js     jetstream.JetStream
	dbURL  string
	db     *pgxpool.Pool
	stream jetstream.Stream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dbURL := testdb.URL(t) // skips with -short before starting anything

	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats server not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	ctx := context.Background()
	// The stream as txflow's worker creates it (the delivery contract).
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       "TXFLOW",
		Subjects:   []string{"txflow.>"},
		Storage:    jetstream.FileStorage,
		Duplicates: 10 * time.Minute,
		MaxAge:     30 * 24 * time.Hour,
		Discard:    jetstream.DiscardOld,
		Replicas:   1,
	})
	require.NoError(t, err)

	db, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return &env{t: t, url: srv.ClientURL(), js: js, dbURL: dbURL, db: db, stream: stream}
}

// opts are Options with short waits, logging to the test.
func (e *env) opts() Options {
	return Options{
		FetchWait:  300 * time.Millisecond,
		RetryDelay: 100 * time.Millisecond,
		AckWait:    5 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(testWriter{e.t}, nil)),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// tx is a transaction message with the contract's keys.
type tx struct {
	Account    string  `json:"account"`
	ID         string  `json:"id"`
	Date       *string `json:"date,omitempty"`
	Amount     string  `json:"amount"`
	Wording    string  `json:"wording"`
	Tag        *string `json:"tag"`
	Annotation *string `json:"annotation"`
	Error      *string `json:"error"`
	RunID      string  `json:"run_id"`
	Version    int     `json:"version"`
}

func str(s string) *string { return &s }

// msgID is the contract's Nats-Msg-Id of a transaction message.
func msgID(account, id string, version int) string {
	sum := sha256.Sum256([]byte(account + "\x1f" + id))
	return fmt.Sprintf("tx-%s-v%d", hex.EncodeToString(sum[:])[:16], version)
}

// publish publishes m as txflow does and returns the server's ack.
func (e *env) publish(m tx) *jetstream.PubAck {
	e.t.Helper()
	body, err := json.Marshal(m)
	require.NoError(e.t, err)
	return e.publishRaw("txflow.transactions."+m.Account, body, msgID(m.Account, m.ID, m.Version))
}

func (e *env) publishRaw(subject string, body []byte, id string) *jetstream.PubAck {
	e.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = body
	if id != "" {
		msg.Header.Set(nats.MsgIdHdr, id)
	}
	ack, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(e.t, err)
	return ack
}

// row is a backend_transactions row, every column as text (NULL as nil).
type row struct {
	Date, Tag, Annotation, Error *string
	Amount, Wording, RunID       string
	Version                      int
	UpdatedAt                    time.Time
}

func (e *env) rows() map[string]row {
	e.t.Helper()
	ctx := context.Background()
	rs, err := e.db.Query(ctx, `SELECT account, id, date::text, amount::text, wording, tag, annotation, error,
		version, run_id, updated_at FROM backend_transactions`)
	require.NoError(e.t, err)
	out := map[string]row{}
	var account, id string
	var r row
	_, err = pgx.ForEachRow(rs, []any{&account, &id, &r.Date, &r.Amount, &r.Wording, &r.Tag, &r.Annotation,
		&r.Error, &r.Version, &r.RunID, &r.UpdatedAt}, func() error {
		out[account+"/"+id] = r
		return nil
	})
	require.NoError(e.t, err)
	return out
}

func (e *env) consumerInfo() *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), "TXFLOW", DefaultDurable)
	require.NoError(e.t, err)
	info, err := c.Info(context.Background())
	require.NoError(e.t, err)
	return info
}

func (e *env) sync() Stats {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Sync(ctx, e.js, e.db, e.opts())
	require.NoError(e.t, err)
	return st
}
