package backendsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is what Run connects with.
type Config struct {
	// NatsURL is the NATS server URL, or several separated by commas
	// (tls:// for TLS), like txflow's TXFLOW_NATS_URL.
	NatsURL string
	// NatsCreds is the path of a NATS credentials file; "" for none.
	NatsCreds string
	// DatabaseURL is the backend's PostgreSQL database (a postgres:// URL or
	// a key=value DSN).
	DatabaseURL string
	Options
}

// maxBackoff bounds Run's pause between two attempts after errors.
const maxBackoff = 30 * time.Second

// Run applies txflow's results to the backend's database until ctx is
// cancelled, then returns nil after the batch in progress has been applied
// and acked. It waits, logging, while NATS, the stream or the database is
// unavailable (at start too), and retries failed batches with a backoff of
// up to 30 s. It returns an error only for a configuration it cannot use.
func Run(ctx context.Context, cfg Config) error {
	opts := cfg.Options.withDefaults()
	log := opts.Logger
	if cfg.NatsURL == "" {
		return errors.New("no NATS URL")
	}
	if cfg.DatabaseURL == "" {
		return errors.New("no database URL")
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL) // connects lazily
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	defer pool.Close()

	natsOpts := []nats.Option{
		nats.Name("txflow-backend-sync"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.NatsCreds != "" {
		natsOpts = append(natsOpts, nats.UserCredentials(cfg.NatsCreds))
	}
	nc, err := nats.Connect(cfg.NatsURL, natsOpts...)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	backoff := opts.RetryDelay
	pause := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	var s *Syncer
	for s == nil {
		s, err = Open(ctx, js, pool, opts)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("waiting for NATS, the stream and the database", "error", err, "retry_in", backoff)
			if !pause() {
				return nil
			}
		}
	}
	log.Info("consuming", "stream", opts.Stream, "durable", opts.Durable, "subjects", FilterSubject)
	backoff = opts.RetryDelay
	for {
		st, err := s.Batch(ctx)
		if ctx.Err() != nil {
			log.Info("stopped")
			return nil
		}
		if err != nil {
			log.Warn("batch failed, its messages will be delivered again", "messages", st.Messages, "error", err, "retry_in", backoff)
			if !pause() {
				log.Info("stopped")
				return nil
			}
			continue
		}
		backoff = opts.RetryDelay
		if st.Messages > 0 {
			log.Info("batch applied", "messages", st.Messages, "applied", st.Applied, "stale", st.Stale, "terminated", st.Terminated)
		}
	}
}
