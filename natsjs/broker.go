package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Broker is the worker's connection to NATS JetStream: a Publisher whose connection and stream
// are kept up in the background. Open returns at once, whether NATS is reachable or not; the
// stream is ensured as soon as the connection is up, and again after each reconnection (a
// development server restarted without its store has lost it). Ready says whether both are done.
type Broker struct {
	*Publisher
	nc     *nats.Conn
	stream string
	log    *slog.Logger

	mu      sync.Mutex
	ensured bool
	lastErr error

	kick chan struct{} // (re)connected: ensure the stream
	stop chan struct{}
	done chan struct{}
}

// Open connects to url (see Connect) and starts ensuring the stream in the background. It
// returns an error only for settings that cannot work; NATS being down is not one.
func Open(url, creds, stream string, log *slog.Logger) (*Broker, error) {
	if stream == "" {
		stream = DefaultStream
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{stream: stream, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	nc, err := Connect(url, creds,
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to nats", "server", nc.ConnectedUrlRedacted())
			b.wake()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to nats", "server", nc.ConnectedUrlRedacted())
			b.wake()
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // the worker is stopping: Close disconnects on purpose
			}
			log.Warn("disconnected from nats, reconnecting", "error", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats", "error", err)
		}),
	)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	if b.Publisher, err = NewPublisher(nc, stream, DefaultWindow, DefaultAckTimeout); err != nil {
		nc.Close()
		return nil, err
	}
	if !nc.IsConnected() {
		log.Warn("nats not reachable at start, retrying in the background", "servers", redactedServers(nc))
	}
	b.wake()
	go b.ensureLoop()
	return b, nil
}

func (b *Broker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// ensureLoop ensures the stream each time the connection comes up, retrying with backoff (1 s
// doubling to 30 s) while it fails.
func (b *Broker) ensureLoop() {
	defer close(b.done)
	for {
		select {
		case <-b.stop:
			return
		case <-b.kick:
		}
		wait := time.Second
		for b.nc.IsConnected() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := EnsureStream(ctx, b.js, b.stream)
			cancel()
			if err == nil {
				b.UseBatches(s.CachedInfo().Config.AllowBatchPublish)
			}
			b.mu.Lock()
			b.ensured, b.lastErr = err == nil, err
			b.mu.Unlock()
			if err == nil {
				b.log.Info("nats stream ready", "stream", b.stream)
				break
			}
			b.log.Warn("nats stream not ready, retrying", "stream", b.stream, "error", err, "in", wait)
			select {
			case <-b.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
		}
	}
}

// Ready returns nil when the broker is connected and its stream ensured, and otherwise an error
// saying which is not: for the worker's /readyz.
func (b *Broker) Ready(context.Context) error {
	if !b.nc.IsConnected() {
		msg := fmt.Sprintf("not connected to nats (%s, servers %s)", strings.ToLower(b.nc.Status().String()), redactedServers(b.nc))
		if err := b.nc.LastError(); err != nil {
			msg += ": " + err.Error()
		}
		return errors.New(msg)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ensured {
		if b.lastErr != nil {
			return b.lastErr
		}
		return fmt.Errorf("stream %s not ensured yet", b.stream)
	}
	return nil
}

// Stream returns the name of the broker's stream.
func (b *Broker) Stream() string { return b.stream }

// Close stops the background work and closes the connection, after flushing what it buffered.
func (b *Broker) Close() {
	close(b.stop)
	<-b.done
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(5 * time.Second)
	}
	b.nc.Close()
}

// redactedServers names the servers of nc without their credentials.
func redactedServers(nc *nats.Conn) string {
	var out []string
	for _, s := range nc.Servers() {
		if i := strings.Index(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				s = s[:j+3] + "REDACTED" + s[i:]
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}
