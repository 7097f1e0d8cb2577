package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/activity"

	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/postgres"
)

// Publisher publishes messages and says which the broker acknowledged (*natsjs.Broker in the
// worker): the indexes in msgs of those acknowledged, and an error when any was not.
type Publisher interface {
	Publish(ctx context.Context, msgs []natsjs.Msg) (acked []int, err error)
}

// sender is a Publisher that can also send a batch and wait for its acknowledgements apart
// (natsjs.Publisher.Send): Publish then sends a chunk's slices in order while the previous one is
// being acknowledged. With a Publisher that cannot, two slices are published at once.
type sender interface {
	Send(ctx context.Context, msgs []natsjs.Msg) (wait func(context.Context) ([]int, error))
}

// DefaultPublishSlice is the number of a chunk's lines whose messages Publish reads, publishes
// and marks delivered at a time.
const DefaultPublishSlice = 5000

// WaitingForBroker starts the message of every error of Publish and of the notices that failed
// for want of the broker; it is also the publish stage's phase while it waits (the summary).
const WaitingForBroker = "waiting for the broker"

// PublishWaitingSignal is the signal through which Publish tells the workflow that runs it that
// it is waiting for the broker: the workflow shows it in the publish stage until a chunk completes.
const PublishWaitingSignal = "publish-waiting"

// PublishWaiting is the detail of PublishWaitingSignal.
type PublishWaiting struct {
	Error   string // why the attempt failed, starting with WaitingForBroker
	Attempt int32  // the attempt that failed
}

// PublishProgress is Publish's heartbeat detail: what the chunk's attempts published so far.
type PublishProgress struct {
	Published int64 // messages acknowledged, over the chunk's attempts
}

// Names of the metrics Publish emits (Prometheus: txflow_messages_published_total and
// txflow_delivery_lag_seconds).
const (
	MetricMessagesPublished = "txflow_messages_published" // counter: transactions' messages acknowledged
	MetricDeliveryLag       = "txflow_delivery_lag"       // timer: from a message's outbox row to its acknowledgement, the oldest of each slice
)

// Delivery publishes the runs' new results to the broker. Its method is a Temporal activity,
// registered apart from Activities.
type Delivery struct {
	DB OutboxStore // *postgres.DB in the worker
	// Broker publishes the messages; nil when delivery is off on this worker: Publish then waits
	// (fails, and is retried) for a worker that has it.
	Broker Publisher
	// Slice is the number of lines read at a time; DefaultPublishSlice when 0.
	Slice int64
	// Waiting receives the signal that a chunk waits for the broker; when nil, Publish signals
	// its workflow through the worker's Temporal client.
	Waiting func(ctx context.Context, workflowID, runID string, w PublishWaiting) error
}

// Publish delivers the messages of the chunk's lines not delivered yet: it reads them a slice of
// lines at a time, publishes them, and records what the broker acknowledged, heartbeating its
// progress. For a run delivered by range of lines (its store is a RunOutboxStore and the run has
// an outbox_runs row), it records, after each slice whose every message was acknowledged, the
// line up to which the chunk is (AckRunLines, over the slices acknowledged in order), and a retry
// starts there; once the chunk is complete, FinishRunChunk purges the run's rows if it was the
// last. Otherwise (outbox rows: a run settled before outbox_runs existed) it deletes from the
// outbox the rows whose messages were acknowledged. What was acknowledged is recorded only once
// it was, so a message is delivered at least once: a retry publishes again what was not recorded
// (at most the slices in flight), and the broker (by its Nats-Msg-Id) or the consumer (by
// account, id and version) drops a duplicate.
//
// A broker that cannot be reached, or did not acknowledge a message, yields a retryable error
// whose message starts with WaitingForBroker; the first failed attempts (1, 2, 4, 8, ...) also
// tell the workflow so by signal. Database errors are returned as they are, for a retry.
func (d *Delivery) Publish(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	var progress PublishProgress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &progress) // a detail that cannot be read counts from 0
	}
	var published atomic.Int64
	published.Store(progress.Published)
	defer keepAlive(ctx, func() any { return PublishProgress{Published: published.Load()} })()

	if d.Broker == nil {
		return ChunkResult{}, d.waiting(ctx, in, errors.New("delivery is off on this worker (TXFLOW_NATS_URL is empty)"))
	}
	slice := d.Slice
	if slice <= 0 {
		slice = DefaultPublishSlice
	}
	err := d.publishSlices(ctx, in, slice, func(n int) {
		published.Add(int64(n))
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, PublishProgress{Published: published.Load()})
		}
	})
	if err != nil {
		return ChunkResult{}, err
	}
	return ChunkResult{Published: published.Load()}, nil
}

// publishSlice is one slice of a chunk's lines: their messages and the outbox rows they come from
// (only their keys and when they were written: the rows' fields are in the messages).
type publishSlice struct {
	from, to int64
	msgs     []natsjs.Msg
	keys     []postgres.OutboxKey
	written  []time.Time
}

// errBroker marks an error of the broker (not of the database) in publishSlices.
type errBroker struct{ err error }

func (e errBroker) Error() string { return e.err.Error() }
func (e errBroker) Unwrap() error { return e.err }

// ackedLines advances a run's chunk's acknowledged line (AckRunLines) over the slices whose every
// message the broker acknowledged, in the order they were sent: a slice acknowledged before one
// sent earlier waits for it, and a slice not wholly acknowledged stops the line before it.
type ackedLines struct {
	store     RunOutboxStore
	runID     string
	chunkFrom int64

	mu   sync.Mutex
	ends []int64 // the end of each slice sent, in order
	done []bool
	next int // the first slice sent not wholly acknowledged
}

// sent records a slice sent, ending at to, and returns its index.
func (a *ackedLines) sent(to int64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ends = append(a.ends, to)
	a.done = append(a.done, false)
	return len(a.ends) - 1
}

// acked records that slice i was wholly acknowledged and records the chunk's acknowledged line
// when it advanced.
func (a *ackedLines) acked(ctx context.Context, i int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done[i] = true
	prev := a.next
	for a.next < len(a.done) && a.done[a.next] {
		a.next++
	}
	if a.next == prev {
		return nil
	}
	next := a.ends[a.next-1]
	if err := a.store.AckRunLines(ctx, a.runID, a.chunkFrom, next); err != nil {
		return fmt.Errorf("record lines before %d acknowledged: %w", next, err)
	}
	return nil
}

// publishSlices publishes the messages of the chunk's lines, a slice at a time, as a pipeline: the
// next slice is read from the database and sent, in order, while the broker acknowledges the one
// before, so that neither the database nor the broker waits for the other. Each slice's
// acknowledgements are recorded as soon as they are in (see Publish); delivered is then called
// with their number. It returns the first error: a database error as it is, a broker's as the
// waiting error (d.waiting), once the slices in flight are over.
func (d *Delivery) publishSlices(ctx context.Context, in ChunkInput, slice int64, delivered func(int)) error {
	// A run delivered by range of lines starts where the chunk's last attempt was acknowledged.
	start, read := in.From, d.DB.OutboxMessages
	var byRun *ackedLines
	if rs, ok := d.DB.(RunOutboxStore); ok {
		next, yes, err := rs.RunChunkStart(ctx, in.RunID, in.From)
		if err != nil {
			return fmt.Errorf("read where the chunk stands: %w", err)
		}
		if yes {
			start, read = next, rs.RunMessages
			byRun = &ackedLines{store: rs, runID: in.RunID, chunkFrom: in.From}
		}
	}

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := make(chan publishSlice) // read and encoded, not sent yet
	readErr := make(chan error, 1)
	go func() {
		defer close(ready)
		for from := start; from < in.To; from += slice {
			to := min(from+slice, in.To)
			rows, err := read(pctx, in.RunID, from, to)
			if err != nil {
				readErr <- fmt.Errorf("read messages of lines [%d,%d): %w", from, to, err)
				return
			}
			if len(rows) == 0 {
				continue
			}
			ps := publishSlice{from: from, to: to, msgs: make([]natsjs.Msg, len(rows)),
				keys: make([]postgres.OutboxKey, len(rows)), written: make([]time.Time, len(rows))}
			for i, m := range rows {
				if ps.msgs[i], err = TransactionMsg(m); err != nil {
					readErr <- err
					return
				}
				ps.keys[i], ps.written[i] = m.OutboxKey, m.CreatedAt
			}
			select {
			case ready <- ps:
			case <-pctx.Done():
				return
			}
		}
	}()

	// At most two slices are with the broker at once: one being acknowledged, the next sent.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel(err)
		}
	}
	inFlight := make(chan struct{}, 2)
	for s := range ready {
		select {
		case inFlight <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		// Sent here, in order; acknowledged in the background.
		wait := func(ctx context.Context) ([]int, error) { return d.Broker.Publish(ctx, s.msgs) }
		if snd, ok := d.Broker.(sender); ok {
			wait = snd.Send(pctx, s.msgs)
		}
		idx := -1 // the slice's index in byRun
		if byRun != nil {
			idx = byRun.sent(s.to)
		}
		wg.Add(1)
		go func(s publishSlice) {
			defer wg.Done()
			defer func() { <-inFlight }()
			acked, pubErr := wait(pctx)
			if byRun != nil {
				// Recorded even when the context is cancelled by another slice's failure: what the
				// broker acknowledged is not to be sent again.
				if pubErr == nil && len(acked) < len(s.msgs) {
					pubErr = fmt.Errorf("%d of %d messages not acknowledged", len(s.msgs)-len(acked), len(s.msgs))
				}
				if pubErr != nil {
					acked = nil // the retry sends the slice again: counted then
				} else if err := byRun.acked(context.WithoutCancel(ctx), idx); err != nil {
					fail(err)
					return
				}
			} else if len(acked) > 0 {
				keys := make([]postgres.OutboxKey, len(acked))
				for i, j := range acked {
					keys[i] = s.keys[j]
				}
				// Marked even when the context is cancelled by another slice's failure: what the
				// broker acknowledged is not to be sent again.
				if _, err := d.DB.MarkDelivered(context.WithoutCancel(ctx), keys); err != nil {
					fail(fmt.Errorf("mark %d messages delivered: %w", len(keys), err))
					return
				}
			}
			if len(acked) > 0 {
				oldest := time.Now()
				for _, j := range acked {
					if s.written[j].Before(oldest) {
						oldest = s.written[j]
					}
				}
				if activity.IsActivity(ctx) {
					h := activity.GetMetricsHandler(ctx)
					h.Counter(MetricMessagesPublished).Inc(int64(len(acked)))
					h.Timer(MetricDeliveryLag).Record(time.Since(oldest))
				}
				delivered(len(acked))
			}
			if pubErr != nil {
				fail(errBroker{pubErr})
			}
		}(s)
	}
	wg.Wait()
	select {
	case err := <-readErr:
		fail(err)
	default:
	}
	if firstErr == nil {
		if err := ctx.Err(); err != nil {
			return err // the activity's context ended
		}
		if byRun != nil {
			// Every slice of the chunk acknowledged: the chunk is, up to its end (lines without
			// a message included).
			if _, err := byRun.store.FinishRunChunk(ctx, in.RunID, in.From, in.To); err != nil {
				return fmt.Errorf("record the chunk acknowledged: %w", err)
			}
		}
		return nil
	}
	var be errBroker
	if errors.As(firstErr, &be) {
		return d.waiting(ctx, in, be.err)
	}
	return firstErr
}

// waiting returns the error of an attempt that could not publish for want of the broker, and on
// the attempts 1, 2, 4, 8, ... tells the workflow (a few signals per chunk, however long the
// broker is down).
func (d *Delivery) waiting(ctx context.Context, in ChunkInput, cause error) error {
	err := fmt.Errorf("%s: %w", WaitingForBroker, cause)
	if !activity.IsActivity(ctx) {
		return err
	}
	info := activity.GetInfo(ctx)
	activity.GetLogger(ctx).Warn("publish waits for the broker", "run_id", in.RunID, "from", in.From, "to", in.To,
		"attempt", info.Attempt, "error", cause)
	if info.Attempt&(info.Attempt-1) != 0 {
		return err
	}
	signal := d.Waiting
	if signal == nil {
		signal = func(ctx context.Context, workflowID, runID string, w PublishWaiting) error {
			return activity.GetClient(ctx).SignalWorkflow(ctx, workflowID, runID, PublishWaitingSignal, w)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	we := info.WorkflowExecution
	if serr := signal(sctx, we.ID, we.RunID, PublishWaiting{Error: err.Error(), Attempt: info.Attempt}); serr != nil {
		activity.GetLogger(ctx).Warn("publish waiting not signalled", "error", serr)
	}
	return err
}

// TransactionMessage is the body of a transaction's message, on subject
// txflow.transactions.<account> (docs/schema/transaction-message.schema.json): the transaction's
// result as stored.
type TransactionMessage struct {
	Account    string  `json:"account"`
	ID         string  `json:"id"`             // the id as first read
	Date       string  `json:"date,omitempty"` // YYYY-MM-DD, absent when unknown
	Amount     string  `json:"amount"`         // the stored decimal, with two decimals
	Wording    string  `json:"wording"`
	Tag        *string `json:"tag"`
	Annotation *string `json:"annotation"`
	Error      *string `json:"error"`
	RunID      string  `json:"run_id"` // the run that stored the result
	Version    int32   `json:"version"`
}

// TransactionMsg returns the message of an outbox row: its subject, id and JSON body. The body is
// what encoding/json makes of a TransactionMessage without HTML escaping (wordings as stored: <, >
// and & unescaped), written by hand: the worker writes one per transaction it delivers, and
// reflection was most of the cost (TestTransactionMsgIsEncodingJSON checks they agree).
func TransactionMsg(m postgres.OutboxMessage) (natsjs.Msg, error) {
	b := make([]byte, 0, 160+len(m.Account)+len(m.ID)+len(m.Wording)+len(m.RunID))
	b = append(b, `{"account":`...)
	b = appendJSONString(b, m.Account)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, m.ID)
	if m.Date != "" {
		b = append(b, `,"date":`...)
		b = appendJSONString(b, m.Date)
	}
	b = append(b, `,"amount":`...)
	b = appendJSONString(b, m.Amount)
	b = append(b, `,"wording":`...)
	b = appendJSONString(b, m.Wording)
	for _, f := range []struct {
		name  string
		value *string
	}{{`,"tag":`, m.Tag}, {`,"annotation":`, m.Annotation}, {`,"error":`, m.Error}} {
		b = append(b, f.name...)
		if f.value == nil {
			b = append(b, "null"...)
		} else {
			b = appendJSONString(b, *f.value)
		}
	}
	b = append(b, `,"run_id":`...)
	b = appendJSONString(b, m.RunID)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(m.Version), 10)
	b = append(b, '}')
	return natsjs.Msg{
		Subject: TransactionSubject(m.Account),
		ID:      TransactionMsgID(m.Account, m.ID, m.Version),
		Data:    b,
	}, nil
}

// appendJSONString appends s as a JSON string, as encoding/json writes it without HTML escaping:
// '"' and '\\' escaped, control characters as \b, \f, \n, \r, \t or \u00XX, U+2028 and U+2029 as \u2028
// and \u2029, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// TransactionSubject is the subject of an account's transactions: txflow.transactions.<account>.
// An account's dots make tokens of the subject (subscribe to txflow.transactions.> to get every
// account); an account whose dots would leave a token empty (a dot first, last or doubled) has
// its dots written '_'.
func TransactionSubject(account string) string {
	if strings.HasPrefix(account, ".") || strings.HasSuffix(account, ".") || strings.Contains(account, "..") {
		account = strings.ReplaceAll(account, ".", "_")
	}
	return natsjs.SubjectTransactions + account
}

// TransactionMsgID is the Nats-Msg-Id of a transaction's message: tx-<first 16 hex digits of
// sha256(account, 0x1F, id)>-v<version>. It is the same whenever the same result is published
// again, so the stream drops a re-send within its duplicate window.
func TransactionMsgID(account, id string, version int32) string {
	key := make([]byte, 0, 64)
	key = append(append(append(key, account...), 0x1f), id...)
	h := sha256.Sum256(key)
	b := make([]byte, 0, 32)
	b = append(b, "tx-"...)
	b = hex.AppendEncode(b, h[:8])
	b = append(b, "-v"...)
	return string(strconv.AppendInt(b, int64(version), 10))
}

// NoticeMsg returns the message of a run's notice: on txflow.runs.failed or
// txflow.runs.completed, with the id run-<run id>-<attempt>-<kind>, body as the webhook's.
func NoticeMsg(notice RunNotice, body []byte) natsjs.Msg {
	subject := natsjs.SubjectRunsCompleted
	if notice.Kind == NoticeRunFailed {
		subject = natsjs.SubjectRunsFailed
	}
	return natsjs.Msg{Subject: subject, ID: fmt.Sprintf("run-%s-%s-%s", notice.RunID, notice.Attempt, notice.Kind), Data: body}
}
