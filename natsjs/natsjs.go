// Package natsjs publishes txflow's messages to NATS JetStream: it connects (Connect), makes sure
// the stream exists (EnsureStream) and publishes batches of messages asynchronously, reporting
// which the stream acknowledged (Publisher). Broker puts the three together for the worker: it
// keeps connecting and ensuring the stream in the background, so a worker starts while NATS is
// down, and says whether it is ready.
//
// What the messages say (subjects, bodies, ids) is the activities' business; this package only
// carries them. See docs/delivery.md.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects and stream.
const (
	// SubjectAll covers every subject txflow publishes to: the stream must cover it.
	SubjectAll = "txflow.>"
	// SubjectTransactions is the prefix of a transaction's subject: txflow.transactions.<account>.
	SubjectTransactions = "txflow.transactions."
	// SubjectRunsCompleted and SubjectRunsFailed receive the runs' notices.
	SubjectRunsCompleted = "txflow.runs.completed"
	SubjectRunsFailed    = "txflow.runs.failed"

	// DefaultStream is the stream's name when none is configured.
	DefaultStream = "TXFLOW"
	// DuplicateWindow is how long the stream remembers a message id to drop a re-send.
	DuplicateWindow = 10 * time.Minute
	// MaxAge is how long the stream keeps a message.
	MaxAge = 30 * 24 * time.Hour
)

// Defaults of a Publisher.
const (
	// DefaultWindow bounds the messages published and not yet acknowledged, per connection.
	DefaultWindow = 16384
	// DefaultAckTimeout is how long a message may wait for its acknowledgement.
	DefaultAckTimeout = 30 * time.Second
)

// ErrUnavailable says that the broker cannot be reached now: the connection is down (it is being
// re-established in the background) or closed. Trying again later may succeed.
var ErrUnavailable = errors.New("nats is not reachable")

// Msg is one message to publish.
type Msg struct {
	Subject string
	ID      string // the Nats-Msg-Id header: the stream drops a message whose id it saw within its duplicate window
	Data    []byte
}

// Connect connects to the NATS servers of url (comma-separated; tls:// URLs use TLS), with the
// credentials file creds when not empty. It never gives up: a server that cannot be reached at
// start is retried in the background (the connection is returned in the reconnecting state), as is
// a connection lost later, every second or so. opts come after these defaults and may override
// them. It returns an error only for settings that cannot work (a malformed URL, a credentials
// file that cannot be read).
func Connect(url, creds string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name("txflow-worker"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(200*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5 * time.Second),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
	}
	if creds != "" {
		base = append(base, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
}

// StreamConfig is the configuration of the stream EnsureStream creates: every txflow subject, file
// storage, a duplicate window of DuplicateWindow, messages kept MaxAge (the oldest discarded
// first), one replica.
func StreamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "txflow: transactions' results and runs' notices",
		Subjects:    []string{SubjectAll},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      MaxAge,
		Duplicates:  DuplicateWindow,
		Replicas:    1,
		// Fast batch publishing (nats-server 2.14+). The publisher uses it when the stream's
		// configuration, as the server reports it, allows it (see Broker).
		AllowBatchPublish: true,
	}
}

// EnsureStream creates the stream name with StreamConfig when it does not exist. An existing
// stream is used as it is, once checked to cover SubjectAll (an error says which subjects it has
// otherwise), except that a stream txflow created (its description is StreamConfig's) without
// fast batch publishing gets it: created by an earlier version. When that update fails the stream
// is used as it is.
func EnsureStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, StreamConfig(name))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, name) // another worker created it meanwhile
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	if cfg := s.CachedInfo().Config; !cfg.AllowBatchPublish && cfg.Description == StreamConfig(name).Description {
		cfg.AllowBatchPublish = true
		if updated, err := js.UpdateStream(ctx, cfg); err == nil {
			s = updated
		}
	}
	subjects := s.CachedInfo().Config.Subjects
	for _, sub := range subjects {
		if covers(sub, SubjectAll) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("stream %s does not cover %s (its subjects: %s): add it to the stream, or name another stream in TXFLOW_NATS_STREAM",
		name, SubjectAll, strings.Join(subjects, ", "))
}

// covers says whether every subject matched by subject is matched by filter (NATS wildcards:
// '*' one token, '>' one or more tokens at the end).
func covers(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, ft := range f {
		if ft == ">" {
			return i < len(s)
		}
		if i >= len(s) || s[i] == ">" {
			return false
		}
		if ft != "*" && ft != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// Publisher publishes batches of messages to a stream without waiting for each acknowledgement
// in turn. With fast batch publishing (UseBatches: the stream allows it), each batch is one batch
// of the stream, acknowledged every few hundred messages and at its end (see batch.go); otherwise
// each message is acknowledged on its own, and at most the publisher's window of messages are in
// flight at once, over all the batches it is publishing.
type Publisher struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	stream     string
	ackTimeout time.Duration
	batches    *batches
	batched    atomic.Bool
}

// NewPublisher returns a Publisher to stream over nc: window messages in flight at most
// (DefaultWindow when <= 0), each acknowledged within ackTimeout (DefaultAckTimeout when <= 0).
func NewPublisher(nc *nats.Conn, stream string, window int, ackTimeout time.Duration) (*Publisher, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p := &Publisher{nc: nc, js: js, stream: stream, ackTimeout: ackTimeout, batches: newBatches(nc, stream, ackTimeout)}
	p.batches.disabled = func() { p.batched.Store(false) }
	return p, nil
}

// UseBatches says whether to publish with fast batch publishing: the stream must allow it
// (jetstream.StreamConfig.AllowBatchPublish, which EnsureStream sets on the streams it creates).
// A new Publisher does not; one whose batch the stream refuses stops (that Publish fails, the next
// acknowledges each message).
func (p *Publisher) UseBatches(on bool) { p.batched.Store(on) }

// JetStream returns the publisher's JetStream context.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// Publish publishes msgs, with their ids in the Nats-Msg-Id header, and waits for the stream to
// acknowledge them. It returns the indexes in msgs of the messages acknowledged, in order (a
// message the stream dropped as a duplicate is acknowledged: it was stored before), and an error
// when any was not: those may or may not have been stored, and are to be published again. When
// the connection is down it publishes nothing and returns an error wrapping ErrUnavailable.
func (p *Publisher) Publish(ctx context.Context, msgs []Msg) ([]int, error) {
	return p.Send(ctx, msgs)(ctx)
}

// Send publishes msgs as Publish does but returns once they are sent, without waiting for their
// acknowledgements: the function it returns waits for them and returns what Publish returns.
// Batches sent one after the other reach the stream in that order, so a caller can send the next
// batch while the previous one is being acknowledged. The function must be called.
func (p *Publisher) Send(ctx context.Context, msgs []Msg) (wait func(context.Context) ([]int, error)) {
	if len(msgs) == 0 {
		return func(context.Context) ([]int, error) { return nil, nil }
	}
	if !p.nc.IsConnected() {
		err := fmt.Errorf("%w (connection %s)", ErrUnavailable, strings.ToLower(p.nc.Status().String()))
		return func(context.Context) ([]int, error) { return nil, err }
	}
	if p.batched.Load() {
		return p.batches.send(ctx, msgs)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var sendErr error
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			sendErr = err
			break
		}
		f, err := p.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Data},
			jetstream.WithMsgID(m.ID), jetstream.WithExpectStream(p.stream), jetstream.WithStallWait(p.ackTimeout))
		if err != nil {
			sendErr = fmt.Errorf("publish to %s: %w", m.Subject, unavailable(err))
			break
		}
		futures = append(futures, f)
	}
	return func(ctx context.Context) ([]int, error) {
		acked := make([]int, 0, len(futures))
		var ackErr error
		failed := 0
		for i, f := range futures {
			select {
			case <-f.Ok():
				acked = append(acked, i)
			case err := <-f.Err():
				failed++
				if ackErr == nil {
					ackErr = fmt.Errorf("message %s to %s not acknowledged: %w", msgs[i].ID, msgs[i].Subject, unavailable(err))
				}
			case <-ctx.Done():
				return acked, fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
			}
		}
		if failed > 1 {
			ackErr = fmt.Errorf("%w (and %d more)", ackErr, failed-1)
		}
		return acked, errors.Join(sendErr, ackErr)
	}
}

// unavailable marks the errors of a connection lost as ErrUnavailable.
func unavailable(err error) error {
	switch {
	case errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
