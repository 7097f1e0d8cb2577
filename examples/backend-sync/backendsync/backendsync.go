// Package backendsync applies txflow's transaction results, read from NATS
// JetStream, to a backend's own table, backend_transactions, keyed by
// (account, id).
//
// It is a durable pull consumer on txflow.transactions.> with explicit acks.
// Each batch of messages is applied in one database transaction and acked
// only after it commits, so delivery is at least once: a crash or a database
// error before the ack means the batch is delivered again. A row is written
// only when the message's version is newer than the stored one, so a
// redelivered, duplicated or out-of-order message changes nothing: the table
// ends up as if every result had been applied exactly once, in order.
//
// Three entry points:
//
//   - Run(ctx, Config) connects to NATS and PostgreSQL and applies messages
//     until ctx is cancelled (the command in the parent directory);
//   - Sync(ctx, js, db, Options) applies everything the stream holds for the
//     consumer and returns once the consumer is idle: for tests and tools
//     that run the consumer in-process over connections of their own;
//   - Open then Syncer.Batch and Syncer.Drain for finer control.
package backendsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Options.
const (
	DefaultStream        = "TXFLOW"
	DefaultDurable       = "backend-sync"
	DefaultBatchSize     = 500
	DefaultAckWait       = time.Minute
	DefaultFetchWait     = 5 * time.Second
	DefaultRetryDelay    = 5 * time.Second
	DefaultMaxAckPending = 4 * DefaultBatchSize
)

// FilterSubject is the subjects the consumer reads: one message per
// transaction whose result is new or changed.
const FilterSubject = "txflow.transactions.>"

// Options tune the consumer; zero values mean the defaults.
type Options struct {
	// Stream is the JetStream stream txflow publishes to (DefaultStream).
	Stream string
	// Durable is the consumer's durable name (DefaultDurable). Processes
	// sharing it share the work; the stream remembers its position.
	Durable string
	// BatchSize is the most messages fetched and applied in one database
	// transaction (DefaultBatchSize).
	BatchSize int
	// MaxAckPending bounds the messages delivered and not yet acked, over all
	// processes of the durable (DefaultMaxAckPending, at least BatchSize).
	MaxAckPending int
	// AckWait is how long the server waits for an ack before delivering a
	// message again (DefaultAckWait). A batch's database work is bounded by
	// half of it.
	AckWait time.Duration
	// FetchWait is how long one Batch waits for a message when none is
	// waiting (DefaultFetchWait); Drain waits this long before deciding the
	// consumer is idle.
	FetchWait time.Duration
	// RetryDelay is how long a batch the database refused waits before it is
	// delivered again (DefaultRetryDelay), and Run's first pause after an
	// error.
	RetryDelay time.Duration
	// Logger receives what the consumer does (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	if o.MaxAckPending < o.BatchSize {
		o.MaxAckPending = o.BatchSize
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.FetchWait <= 0 {
		o.FetchWait = DefaultFetchWait
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Stats count what a Batch (or the batches of a Drain) did.
type Stats struct {
	Messages   int   // messages fetched
	Applied    int64 // rows inserted or updated
	Stale      int   // messages not newer than the stored row: acked, nothing written
	Terminated int   // malformed messages, logged and terminated
}

func (s *Stats) add(o Stats) {
	s.Messages += o.Messages
	s.Applied += o.Applied
	s.Stale += o.Stale
	s.Terminated += o.Terminated
}

// Syncer is an open consumer: the durable JetStream consumer and the
// backend's database.
type Syncer struct {
	cons jetstream.Consumer
	db   *pgxpool.Pool
	opts Options
	log  *slog.Logger
}

// ConsumerConfig is the configuration Open creates or updates the durable
// consumer with.
func ConsumerConfig(opts Options) jetstream.ConsumerConfig {
	opts = opts.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		Description:   "txflow results applied to " + Table,
		FilterSubject: FilterSubject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		MaxAckPending: opts.MaxAckPending,
		// Never give up on a message: one the database refused for a while
		// must still be applied once it is back.
		MaxDeliver: -1,
	}
}

// Open creates the table if it is missing and creates (or updates) the
// durable consumer on the stream. It fails with an error wrapping
// jetstream.ErrStreamNotFound while txflow's worker has not created the
// stream yet.
func Open(ctx context.Context, js jetstream.JetStream, db *pgxpool.Pool, opts Options) (*Syncer, error) {
	opts = opts.withDefaults()
	if err := EnsureTable(ctx, db); err != nil {
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, opts.Stream, ConsumerConfig(opts))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on stream %s: %w", opts.Durable, opts.Stream, err)
	}
	return &Syncer{cons: cons, db: db, opts: opts, log: opts.Logger}, nil
}

// Sync opens the consumer (Open) and applies messages until it is idle
// (Syncer.Drain). It is meant for callers that hold their own connections,
// end-to-end tests among them:
//
//	st, err := backendsync.Sync(ctx, js, pool, backendsync.Options{Stream: "TXFLOW"})
//
// leaves backend_transactions holding the newest version of every
// transaction published so far. A database error is returned (wrapped); the
// messages of the failed batch stay unacked and are delivered again after
// Options.RetryDelay.
func Sync(ctx context.Context, js jetstream.JetStream, db *pgxpool.Pool, opts Options) (Stats, error) {
	s, err := Open(ctx, js, db, opts)
	if err != nil {
		return Stats{}, err
	}
	return s.Drain(ctx)
}

// Drain applies batches until the consumer is idle: nothing left to deliver
// and nothing awaiting an ack (a batch handed back after a database error is
// awaited). It returns the totals, and stops at the first error.
func (s *Syncer) Drain(ctx context.Context) (Stats, error) {
	var total Stats
	checkIdle := true
	for {
		if checkIdle {
			info, err := s.cons.Info(ctx)
			if err != nil {
				return total, fmt.Errorf("consumer info: %w", err)
			}
			if info.NumPending == 0 && info.NumAckPending == 0 {
				return total, nil
			}
		}
		st, err := s.Batch(ctx)
		total.add(st)
		if err != nil {
			return total, err
		}
		// A full batch: more are probably waiting.
		checkIdle = st.Messages < s.opts.BatchSize
	}
}

// Batch fetches up to BatchSize messages (waiting up to FetchWait for the
// first one), terminates the malformed ones, applies the others in one
// database transaction and acks them once it has committed. When the
// database fails, the batch is not acked: its messages are delivered again
// after RetryDelay, and the error is returned. A batch with no message
// returns zero Stats and no error.
func (s *Syncer) Batch(ctx context.Context) (Stats, error) {
	msgs, err := s.fetch(ctx)
	st := Stats{Messages: len(msgs)}
	if err != nil || len(msgs) == 0 {
		return st, err
	}

	type item struct {
		msg jetstream.Msg
		m   Message
	}
	valid := make([]item, 0, len(msgs))
	for _, msg := range msgs {
		m, err := ParseMessage(msg.Data())
		if err != nil {
			s.terminate(msg, err)
			st.Terminated++
			continue
		}
		valid = append(valid, item{msg, m})
	}
	if len(valid) == 0 {
		return st, nil
	}

	// One row per (account, id): the newest version of the batch. The others
	// would be stale once it is applied (and one statement may not update a
	// row twice).
	type key struct{ account, id string }
	newest := make(map[key]int, len(valid))
	rows := make([]Message, 0, len(valid))
	for _, it := range valid {
		k := key{it.m.Account, it.m.ID}
		if i, seen := newest[k]; seen {
			if it.m.Version > rows[i].Version {
				rows[i] = it.m
			}
			continue
		}
		newest[k] = len(rows)
		rows = append(rows, it.m)
	}

	// The batch's database work is not cut short by a shutdown (ctx): it
	// finishes, or fails, within half the ack wait.
	dbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.AckWait/2)
	defer cancel()
	changed, err := apply(dbCtx, s.db, rows)
	if err == nil {
		st.Applied = changed
		st.Stale = len(valid) - int(changed)
		for _, it := range valid[:len(valid)-1] {
			s.ack(it.msg)
		}
		// The server handles a consumer's acks in order: once it has
		// confirmed the last one, the batch is acked (and Drain's check of
		// the consumer's state sees it).
		last := valid[len(valid)-1].msg
		if err := last.DoubleAck(dbCtx); err != nil {
			s.log.Warn("ack", "subject", last.Subject(), "error", err)
		}
		return st, nil
	}
	if !isDataError(err) {
		for _, it := range valid {
			s.nak(it.msg)
		}
		return st, err
	}

	// PostgreSQL refused some data ParseMessage let through: apply the
	// messages one by one, oldest version first, to terminate only the bad
	// ones.
	s.log.Warn("batch refused by the database, applying its messages one by one", "error", err)
	sort.SliceStable(valid, func(i, j int) bool { return valid[i].m.Version < valid[j].m.Version })
	for i, it := range valid {
		changed, err := apply(dbCtx, s.db, []Message{it.m})
		switch {
		case err == nil:
			st.Applied += changed
			if changed == 0 {
				st.Stale++
			}
			s.ack(it.msg)
		case isDataError(err):
			s.terminate(it.msg, err)
			st.Terminated++
		default:
			for _, rest := range valid[i:] {
				s.nak(rest.msg)
			}
			return st, err
		}
	}
	return st, nil
}

// fetch returns the messages waiting, up to BatchSize; when there are none
// it waits up to FetchWait for one, then takes what else is waiting.
func (s *Syncer) fetch(ctx context.Context) ([]jetstream.Msg, error) {
	msgs, err := s.fetchNoWait(s.opts.BatchSize)
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.opts.FetchWait)
	defer cancel()
	b, err := s.cons.Fetch(1, jetstream.FetchContext(wctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("fetch: %w", err)
	}
	msgs = collect(b)
	if len(msgs) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := b.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		return nil, nil
	}
	if s.opts.BatchSize > 1 {
		more, err := s.fetchNoWait(s.opts.BatchSize - 1)
		if err != nil {
			// The first message is applied anyway; the error shows again on
			// the next fetch if it lasts.
			s.log.Warn("fetch", "error", err)
		}
		msgs = append(msgs, more...)
	}
	return msgs, nil
}

func (s *Syncer) fetchNoWait(n int) ([]jetstream.Msg, error) {
	b, err := s.cons.FetchNoWait(n)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	msgs := collect(b)
	if err := b.Error(); err != nil && len(msgs) == 0 {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return msgs, nil
}

func collect(b jetstream.MessageBatch) []jetstream.Msg {
	var msgs []jetstream.Msg
	for msg := range b.Messages() {
		msgs = append(msgs, msg)
	}
	return msgs
}

// ack, nak and terminate log a failure to reach the server and go on: a lost
// ack or nak means the message is delivered again after AckWait, which the
// version check makes harmless.
func (s *Syncer) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		s.log.Warn("ack", "subject", msg.Subject(), "error", err)
	}
}

func (s *Syncer) nak(msg jetstream.Msg) {
	if err := msg.NakWithDelay(s.opts.RetryDelay); err != nil {
		s.log.Warn("nak", "subject", msg.Subject(), "error", err)
	}
}

func (s *Syncer) terminate(msg jetstream.Msg, reason error) {
	attrs := []any{"subject", msg.Subject(), "msg_id", msg.Headers().Get(nats.MsgIdHdr), "error", reason}
	if md, err := msg.Metadata(); err == nil {
		attrs = append(attrs, "stream_seq", md.Sequence.Stream)
	}
	s.log.Error("malformed message terminated", attrs...)
	if err := msg.TermWithReason(reason.Error()); err != nil {
		s.log.Warn("term", "subject", msg.Subject(), "error", err)
	}
}
