package devnats

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// publish publishes one message with a message id to the stream TEST through a new connection.
func publish(t *testing.T, ctx context.Context, url, id string) *jetstream.PubAck {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "TEST", Subjects: []string{"test.>"}, Storage: jetstream.FileStorage, Duplicates: time.Minute,
	})
	require.NoError(t, err)
	ack, err := js.Publish(ctx, "test.one", []byte("hello"), jetstream.WithMsgID(id))
	require.NoError(t, err)
	return ack
}

func streamMsgs(t *testing.T, ctx context.Context, url string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx, "TEST")
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

func TestRestartKeepsPortAndStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := StartForTest(t)
	require.True(t, s.Running())
	require.NotZero(t, s.Port())
	url := s.URL()
	require.Equal(t, "nats://127.0.0.1:", url[:len("nats://127.0.0.1:")])

	require.False(t, publish(t, ctx, url, "m1").Duplicate)

	// A client connected across the outage reconnects by itself.
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()

	s.Stop()
	require.False(t, s.Running())
	_, err = nats.Connect(url, nats.Timeout(time.Second))
	require.Error(t, err, "the server still answers after Stop")
	s.Stop() // stopping twice does nothing

	require.NoError(t, s.Restart())
	require.True(t, s.Running())
	require.Equal(t, url, s.URL(), "the server came back on another port")
	require.EqualValues(t, 1, streamMsgs(t, ctx, url), "the stream lost its message")
	require.True(t, publish(t, ctx, url, "m1").Duplicate, "the duplicate window was lost")
	require.False(t, publish(t, ctx, url, "m2").Duplicate)
	require.EqualValues(t, 2, streamMsgs(t, ctx, url))
	require.Eventually(t, nc.IsConnected, 10*time.Second, 50*time.Millisecond, "the client did not reconnect")
}

func TestStartReusesTheRecordedPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS servers, skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	// A port of its own rather than 4222, which another server on this machine may hold.
	first := StartForTest(t)
	port := first.Port()
	first.Stop()

	s, err := Start(dir, port)
	require.NoError(t, err)
	require.Equal(t, port, s.Port())
	publish(t, ctx, s.URL(), "m1")
	s.Stop()

	again, err := Start(dir, 0)
	require.NoError(t, err)
	defer again.Stop()
	require.Equal(t, port, again.Port(), "a start on the same store takes the port it had")
	require.EqualValues(t, 1, streamMsgs(t, ctx, again.URL()))

	// Taken by another server: Start says so at once instead of waiting.
	_, err = Start(t.TempDir(), port)
	require.ErrorContains(t, err, "taken")
	// Without a port, a fresh store on a machine whose preferred port is taken gets another.
	other, err := Start(t.TempDir(), 0)
	require.NoError(t, err)
	defer other.Stop()
	require.NotEqual(t, port, other.Port())
}
