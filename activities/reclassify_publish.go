package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/postgres"
)

// PublishReclassified delivers the messages a reclassification's apply wrote to the outbox for
// the chunk's diff rows, as Publish does a run's: a slice of rows at a time (in the order of the
// transactions' keys), each transaction's
// message (TransactionMsg) with the result the reclassification applied and its new result
// version, run_id the reclassification's id; the rows the broker acknowledged are deleted
// (MarkDelivered). At least once: a retry publishes again what was not acknowledged, and the
// broker (Nats-Msg-Id) or the consumer (version) drops a duplicate.
//
// A broker that cannot be reached, or that did not acknowledge a message, yields a retryable
// error starting with WaitingForBroker. A store that cannot read a reclassification's messages
// is a non-retryable ErrTypeConfig error.
func (d *Delivery) PublishReclassified(ctx context.Context, in ReclassifyChunkInput) (ReclassifyApplied, error) {
	var progress PublishProgress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &progress)
	}
	var published atomic.Int64
	published.Store(progress.Published)
	defer keepAlive(ctx, func() any { return PublishProgress{Published: published.Load()} })()

	store, ok := d.DB.(ReclassifyOutboxStore)
	if !ok {
		return ReclassifyApplied{}, temporal.NewNonRetryableApplicationError(
			"the worker's store cannot read a reclassification's messages", ErrTypeConfig, nil)
	}
	// The waiting signal names the chunk as a range of one.
	chunk := ChunkInput{RunID: in.ID, From: int64(in.Chunk), To: int64(in.Chunk) + 1}
	if d.Broker == nil {
		return ReclassifyApplied{}, d.waiting(ctx, chunk, errors.New("delivery is off on this worker (TXFLOW_NATS_URL is empty)"))
	}
	slice := d.Slice
	if slice <= 0 {
		slice = DefaultPublishSlice
	}
	for after := int64(math.MinInt64); ; {
		rows, err := store.ReclassifiedMessages(ctx, in.ID, in.Chunk, after, int(slice))
		if err != nil {
			return ReclassifyApplied{}, fmt.Errorf("read messages of chunk %d: %w", in.Chunk, err)
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].Key
		msgs := make([]natsjs.Msg, len(rows))
		for i, m := range rows {
			if msgs[i], err = TransactionMsg(m); err != nil {
				return ReclassifyApplied{}, err
			}
		}
		acked, pubErr := d.Broker.Publish(ctx, msgs)
		if len(acked) > 0 {
			keys := make([]postgres.OutboxKey, len(acked))
			oldest := time.Now()
			for i, j := range acked {
				keys[i] = rows[j].OutboxKey
				if rows[j].CreatedAt.Before(oldest) {
					oldest = rows[j].CreatedAt
				}
			}
			if _, err := store.MarkDelivered(ctx, keys); err != nil {
				return ReclassifyApplied{}, fmt.Errorf("mark %d messages delivered: %w", len(keys), err)
			}
			published.Add(int64(len(acked)))
			if activity.IsActivity(ctx) {
				h := activity.GetMetricsHandler(ctx)
				h.Counter(MetricMessagesPublished).Inc(int64(len(acked)))
				h.Timer(MetricDeliveryLag).Record(time.Since(oldest))
				activity.RecordHeartbeat(ctx, PublishProgress{Published: published.Load()})
			}
		}
		if pubErr != nil {
			return ReclassifyApplied{}, d.waiting(ctx, chunk, pubErr)
		}
	}
	return ReclassifyApplied{Published: published.Load()}, nil
}
