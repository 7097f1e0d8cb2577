package devstack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStream is the stream the worker delivers to unless TXFLOW_NATS_STREAM says otherwise.
const DefaultStream = "TXFLOW"

// Subjects of the messages the worker publishes.
const (
	transactionSubjects = "txflow.transactions."
	runSubjects         = "txflow.runs."
)

// StreamCounts is what a stream holds: messages in all, per-transaction messages and run
// notices.
type StreamCounts struct {
	Messages, Transactions, Notices uint64
}

// CountStream reads the stream's state from the NATS servers at url. It returns
// jetstream.ErrStreamNotFound (wrapped) when the stream does not exist yet.
func CountStream(ctx context.Context, url, stream string) (StreamCounts, error) {
	var c StreamCounts
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.MaxReconnects(0))
	if err != nil {
		return c, fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return c, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return c, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("txflow.>"))
	if err != nil {
		return c, fmt.Errorf("stream %s: %w", stream, err)
	}
	c.Messages = info.State.Msgs
	for subject, n := range info.State.Subjects {
		switch {
		case strings.HasPrefix(subject, transactionSubjects):
			c.Transactions += n
		case strings.HasPrefix(subject, runSubjects):
			c.Notices += n
		}
	}
	return c, nil
}

// DescribeStream says in one line what the stream holds, or why that is not known.
func DescribeStream(ctx context.Context, url, stream string) string {
	c, err := CountStream(ctx, url, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Sprintf("NATS stream %s: not created (the worker creates it when delivery is on)", stream)
	case err != nil:
		return fmt.Sprintf("NATS stream %s: %v", stream, err)
	}
	return fmt.Sprintf("NATS stream %s: %d messages (%d transactions on %s>, %d run notices on %s>)",
		stream, c.Messages, c.Transactions, transactionSubjects, c.Notices, runSubjects)
}
