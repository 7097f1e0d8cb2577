package natsjs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/natsjs/natstest"
)

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := natsjs.Connect(url, "")
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// stored returns the messages of the stream, in order, as (Nats-Msg-Id, subject, body).
func stored(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s %s %s", m.Header.Get(jetstream.MsgIDHeader), m.Subject, m.Data))
	}
	return out
}

func msg(id, subject, body string) natsjs.Msg {
	return natsjs.Msg{ID: id, Subject: subject, Data: []byte(body)}
}

func TestPublishAcknowledgesAndDropsDuplicates(t *testing.T) {
	t.Run("one acknowledgement a message", func(t *testing.T) { testPublish(t, false) })
	t.Run("fast batches", func(t *testing.T) { testPublish(t, true) })
}

func testPublish(t *testing.T, batched bool) {
	srv := natstest.Start(t)
	nc := connect(t, srv.URL())
	p, err := natsjs.NewPublisher(nc, natsjs.DefaultStream, 2, 0) // a window smaller than a batch
	require.NoError(t, err)
	p.UseBatches(batched)
	ctx := context.Background()
	s, err := natsjs.EnsureStream(ctx, p.JetStream(), natsjs.DefaultStream)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	require.True(t, cfg.AllowBatchPublish)
	require.Equal(t, []string{"txflow.>"}, cfg.Subjects)
	require.Equal(t, jetstream.FileStorage, cfg.Storage)
	require.Equal(t, 10*time.Minute, cfg.Duplicates)
	require.Equal(t, 30*24*time.Hour, cfg.MaxAge)
	require.Equal(t, jetstream.DiscardOld, cfg.Discard)
	require.Equal(t, 1, cfg.Replicas)

	acked, err := p.Publish(ctx, []natsjs.Msg{
		msg("a", "txflow.transactions.acme", `{"n":1}`),
		msg("b", "txflow.transactions.acme", `{"n":2}`),
		msg("c", "txflow.transactions.globex", `{"n":3}`),
	})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2}, acked)

	// b again is acknowledged, and dropped by the stream: it has it already.
	acked, err = p.Publish(ctx, []natsjs.Msg{msg("b", "txflow.transactions.acme", `{"n":2}`), msg("d", "txflow.runs.completed", `{"n":4}`)})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1}, acked)
	require.Equal(t, []string{
		`a txflow.transactions.acme {"n":1}`,
		`b txflow.transactions.acme {"n":2}`,
		`c txflow.transactions.globex {"n":3}`,
		`d txflow.runs.completed {"n":4}`,
	}, stored(t, p.JetStream(), natsjs.DefaultStream))

	// A subject outside the stream is not acknowledged: nothing stores it.
	acked, err = p.Publish(ctx, []natsjs.Msg{msg("e", "txflow.transactions.acme", `{}`), msg("f", "elsewhere", `{}`)})
	require.Error(t, err)
	require.Contains(t, err.Error(), "message f to elsewhere not acknowledged")
	require.Equal(t, []int{0}, acked)

	// Many messages through a small window.
	var many []natsjs.Msg
	for i := range 500 {
		many = append(many, msg(fmt.Sprint("m", i), "txflow.transactions.bulk", "{}"))
	}
	acked, err = p.Publish(ctx, many)
	require.NoError(t, err)
	require.Len(t, acked, 500)
	require.Len(t, stored(t, p.JetStream(), natsjs.DefaultStream), 505)
}

func TestEnsureStreamUsesAnExistingStream(t *testing.T) {
	srv := natstest.Start(t)
	js, err := jetstream.New(connect(t, srv.URL()))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{"txflow.transactions.>", "txflow.runs.*"}, MaxAge: time.Hour})
	require.NoError(t, err)
	_, err = natsjs.EnsureStream(ctx, js, "MINE")
	require.ErrorContains(t, err, "stream MINE does not cover txflow.> (its subjects: txflow.transactions.>, txflow.runs.*)")

	require.NoError(t, js.DeleteStream(ctx, "MINE")) // streams may not overlap
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "WIDE", Subjects: []string{"other.>", "txflow.>"}, MaxAge: time.Hour})
	require.NoError(t, err)
	s, err := natsjs.EnsureStream(ctx, js, "WIDE")
	require.NoError(t, err)
	require.Equal(t, time.Hour, s.CachedInfo().Config.MaxAge, "used as it is")
}

// The broker starts while NATS is down, becomes ready when NATS comes up, publishes; NATS going
// down makes publishing fail at once (retryable), and publishing works again once it is back,
// with what the stream stored before kept.
func TestBrokerDownAndBack(t *testing.T) {
	srv := natstest.Start(t)
	srv.Stop()
	b, err := natsjs.Open(srv.URL(), "", "", nil)
	require.NoError(t, err, "NATS down at start is not an error")
	t.Cleanup(b.Close)
	require.ErrorContains(t, b.Ready(context.Background()), "not connected to nats")
	ctx := context.Background()
	_, err = b.Publish(ctx, []natsjs.Msg{msg("x", "txflow.transactions.acme", "{}")})
	require.ErrorIs(t, err, natsjs.ErrUnavailable)

	srv.Restart()
	require.Eventually(t, func() bool { return b.Ready(ctx) == nil }, 20*time.Second, 50*time.Millisecond,
		"ready once NATS is up and the stream created")
	acked, err := b.Publish(ctx, []natsjs.Msg{msg("1", "txflow.transactions.acme", "{}")})
	require.NoError(t, err)
	require.Equal(t, []int{0}, acked)

	srv.Stop()
	require.Eventually(t, func() bool { return b.Ready(ctx) != nil }, 10*time.Second, 20*time.Millisecond)
	_, err = b.Publish(ctx, []natsjs.Msg{msg("2", "txflow.transactions.acme", "{}")})
	require.ErrorIs(t, err, natsjs.ErrUnavailable)

	srv.Restart()
	require.Eventually(t, func() bool { return b.Ready(ctx) == nil }, 20*time.Second, 50*time.Millisecond)
	acked, err = b.Publish(ctx, []natsjs.Msg{msg("2", "txflow.transactions.acme", "{}"), msg("1", "txflow.transactions.acme", "{}")})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1}, acked)
	require.Equal(t, []string{"1 txflow.transactions.acme {}", "2 txflow.transactions.acme {}"},
		stored(t, b.JetStream(), natsjs.DefaultStream), "the store survived the restart, and 1 was not stored twice")
}

// A stream created without fast batch publishing by an earlier version gets it; a stream of
// someone else's is left as it is, and publishing to it works one acknowledgement a message.
func TestEnsureStreamAllowsBatchesOnItsOwnStream(t *testing.T) {
	srv := natstest.Start(t)
	js, err := jetstream.New(connect(t, srv.URL()))
	require.NoError(t, err)
	ctx := context.Background()
	old := natsjs.StreamConfig(natsjs.DefaultStream)
	old.AllowBatchPublish = false
	_, err = js.CreateStream(ctx, old)
	require.NoError(t, err)
	s, err := natsjs.EnsureStream(ctx, js, natsjs.DefaultStream)
	require.NoError(t, err)
	require.True(t, s.CachedInfo().Config.AllowBatchPublish)

	require.NoError(t, js.DeleteStream(ctx, natsjs.DefaultStream))
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{"txflow.>"}})
	require.NoError(t, err)
	s, err = natsjs.EnsureStream(ctx, js, "MINE")
	require.NoError(t, err)
	require.False(t, s.CachedInfo().Config.AllowBatchPublish)

	// A publisher told to use batches on it stops once the stream refuses one.
	p, err := natsjs.NewPublisher(connect(t, srv.URL()), "MINE", 0, 0)
	require.NoError(t, err)
	p.UseBatches(true)
	_, err = p.Publish(ctx, []natsjs.Msg{msg("0", "txflow.transactions.acme", "{}")})
	require.ErrorContains(t, err, "batch publish is disabled")
	acked, err := p.Publish(ctx, []natsjs.Msg{msg("0", "txflow.transactions.acme", "{}")})
	require.NoError(t, err)
	require.Equal(t, []int{0}, acked)

	b, err := natsjs.Open(srv.URL(), "", "MINE", nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.Eventually(t, func() bool { return b.Ready(ctx) == nil }, 20*time.Second, 50*time.Millisecond)
	acked, err = b.Publish(ctx, []natsjs.Msg{msg("1", "txflow.transactions.acme", "{}"), msg("2", "txflow.transactions.acme", "{}")})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1}, acked)
	require.Len(t, stored(t, js, "MINE"), 3)
}

// Batches far larger than the stream's flow of acknowledgements, several at once; the server
// stopped while a batch is sent: what was acknowledged is a prefix of the batch and was stored,
// and publishing everything again once it is back stores each message once.
func TestFastBatches(t *testing.T) {
	srv := natstest.Start(t)
	nc := connect(t, srv.URL())
	p, err := natsjs.NewPublisher(nc, natsjs.DefaultStream, 0, 5*time.Second)
	require.NoError(t, err)
	p.UseBatches(true)
	ctx := context.Background()
	_, err = natsjs.EnsureStream(ctx, p.JetStream(), natsjs.DefaultStream)
	require.NoError(t, err)

	batch := func(prefix string, n int) []natsjs.Msg {
		var out []natsjs.Msg
		for i := range n {
			out = append(out, msg(fmt.Sprintf("%s-%d", prefix, i), "txflow.transactions."+prefix, fmt.Sprintf(`{"n":%d}`, i)))
		}
		return out
	}
	waits := make([]func(context.Context) ([]int, error), 4)
	for i := range waits {
		waits[i] = p.Send(ctx, batch(fmt.Sprint("b", i), 3000))
	}
	for _, wait := range waits {
		acked, err := wait(ctx)
		require.NoError(t, err)
		require.Len(t, acked, 3000)
		require.Equal(t, 2999, acked[2999])
	}
	require.EqualValues(t, 12000, count(t, p.JetStream()))

	// Again: every message acknowledged, none stored twice.
	acked, err := p.Publish(ctx, batch("b2", 3000))
	require.NoError(t, err)
	require.Len(t, acked, 3000)
	require.EqualValues(t, 12000, count(t, p.JetStream()))

	big := batch("big", 200_000)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		time.Sleep(300 * time.Millisecond)
		srv.Stop()
	}()
	acked, err = p.Publish(ctx, big)
	<-stopped
	// The connection lost, or, while the server stops, JetStream first: no stream takes the
	// message, or the stream forgot the batch. Whichever, the error says which message was not
	// acknowledged.
	require.ErrorContains(t, err, fmt.Sprintf("message big-%d to txflow.transactions.big not acknowledged", len(acked)))
	require.Less(t, len(acked), len(big), "the server stopped before the end")
	for i, a := range acked {
		require.Equal(t, i, a, "a prefix")
	}
	srv.Restart()
	require.Eventually(t, nc.IsConnected, 20*time.Second, 50*time.Millisecond)
	require.GreaterOrEqual(t, count(t, p.JetStream()), uint64(12000+len(acked)), "every message acknowledged was stored")

	acked, err = p.Publish(ctx, big)
	require.NoError(t, err)
	require.Len(t, acked, len(big))
	require.EqualValues(t, 12000+len(big), count(t, p.JetStream()), "each message stored once")
}

// count returns the number of messages in the default stream.
func count(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), natsjs.DefaultStream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}
