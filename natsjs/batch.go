package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Fast batch publishing (nats-server 2.14 and later, a stream with allow_batched): the messages of
// a batch carry their place in the batch in their reply subject, the stream stores each as it
// comes and acknowledges the batch every few messages (a flow acknowledgement: every message up to
// a sequence is stored), then once at its end (the commit). Compared with one acknowledgement per
// message, the broker sends and the worker reads about 1/100 of the replies; duplicates are still
// dropped by their Nats-Msg-Id within the stream's duplicate window.
//
// A batch's reply subject is <inbox>.<batch id>.<flow>.fail.<seq>.<op>.$FI: flow is the most
// messages between two flow acknowledgements the publisher accepts, "fail" ends the batch at the
// first message missing (so an acknowledgement of a sequence covers every message before it), seq
// counts the batch's messages from 1 and op says what the message does.
const (
	batchOpStart     = 0 // the first message
	batchOpAppend    = 1 // a message after the first
	batchOpCommit    = 2 // the last message: the stream acknowledges the whole batch once stored
	batchOpCommitEOB = 3 // no message: ends the batch at the messages stored (seq is the next one's)
	batchOpPing      = 4 // no message: asks for the last flow acknowledgement again
)

// errBatchPublishDisabled is the JetStream error code of a batch sent to a stream without
// allow_batched.
const errBatchPublishDisabled = 10205

// batchFlow is the flow a batch asks for: a flow acknowledgement every batchFlow messages at most
// (the stream asks for fewer when several batches are in flight), and batchFlow ×
// batchOutstanding messages sent and not acknowledged at most.
const (
	batchFlow        = 500
	batchOutstanding = 4
)

// batches publishes batches of messages with fast batch publishing over one connection: one
// subscription receives the replies of all its batches.
type batches struct {
	nc         *nats.Conn
	stream     string
	ackTimeout time.Duration
	inbox      string // the replies' prefix
	// disabled is called when the stream refuses batches (they were turned off since its
	// configuration was read): the publisher then acknowledges messages one by one.
	disabled func()

	mu      sync.Mutex
	sub     *nats.Subscription
	pending map[string]*batch // by batch id
}

// batch is the state of one batch, guarded by batches.mu.
type batch struct {
	subject string // the first message's subject: the stream's, where the batch's pings and end go
	sent    uint64 // messages sent
	acked   uint64 // messages stored, from the first: the last flow acknowledgement or the commit's count
	window  uint64 // messages sent and not acknowledged at most
	done    bool   // the batch ended: acked is final
	err     error  // why it ended before its last message was stored
	changed chan struct{}
}

func newBatches(nc *nats.Conn, stream string, ackTimeout time.Duration) *batches {
	return &batches{nc: nc, stream: stream, ackTimeout: ackTimeout, inbox: nc.NewInbox(), pending: map[string]*batch{}}
}

// subscribe subscribes to the replies, once.
func (bs *batches) subscribe() error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.sub != nil {
		return nil
	}
	sub, err := bs.nc.Subscribe(bs.inbox+".>", bs.reply)
	if err != nil {
		return fmt.Errorf("subscribe to batch replies: %w", unavailable(err))
	}
	bs.sub = sub
	return nil
}

// batchReply is any reply of the stream to a batch's message: a flow acknowledgement
// (type "ack"), a gap (type "gap": the batch ends), an error of one message (type "err": the
// batch ends) or the batch's acknowledgement (no type; an error when it failed as a whole).
type batchReply struct {
	Type    string    `json:"type"`
	Seq     uint64    `json:"seq"`
	Msgs    uint64    `json:"msgs"`
	LastSeq uint64    `json:"last_seq"`
	Count   uint64    `json:"count"`
	Error   *apiError `json:"error"`
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d)", e.Description, e.ErrCode) }

// reply handles a reply of the stream to one of the batches.
func (bs *batches) reply(m *nats.Msg) {
	rest := strings.TrimPrefix(m.Subject, bs.inbox+".")
	id, tail, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.pending[id]
	if b == nil || b.done {
		return // a batch over: late replies say nothing new
	}
	defer b.notify()
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		// No stream took the message: JetStream is stopping (or the stream is gone, or the
		// subject is outside it). The stream saw a gap there, or will once the message after it
		// comes; ending the batch at that message makes it acknowledge what it stored before.
		seq := replySeq(tail)
		b.err = fmt.Errorf("message %d of the batch: no stream took it", seq)
		if seq > 0 {
			_ = bs.nc.PublishMsg(&nats.Msg{Subject: b.subject, Reply: bs.replySubject(id, seq, batchOpCommitEOB)})
		}
		return
	}
	var r batchReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		b.end(fmt.Errorf("unreadable reply of the stream: %w", err))
		return
	}
	switch r.Type {
	case "ack":
		b.acked = max(b.acked, r.Seq)
		if r.Msgs > 0 {
			b.window = max(r.Msgs*batchOutstanding, batchOutstanding)
		}
	case "gap":
		b.err = fmt.Errorf("message %d of the batch did not reach the stream", r.LastSeq)
	case "err":
		if r.Error != nil {
			b.err = fmt.Errorf("message %d of the batch: %w", r.Seq, r.Error)
		} else {
			b.err = fmt.Errorf("message %d of the batch failed", r.Seq)
		}
	case "":
		if r.Error != nil {
			if r.Error.ErrCode == errBatchPublishDisabled && bs.disabled != nil {
				bs.disabled()
			}
			b.end(r.Error)
			return
		}
		b.acked = max(b.acked, r.Count)
		b.done = true
	}
}

// replySeq reads the seq of the tail of a reply subject (<flow>.fail.<seq>.<op>.$FI); 0 when it
// cannot.
func replySeq(tail string) uint64 {
	f := strings.Split(tail, ".")
	if len(f) != 5 {
		return 0
	}
	seq, _ := strconv.ParseUint(f[2], 10, 64)
	return seq
}

func (b *batch) notify() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// end ends the batch with err (nil: every message stored).
func (b *batch) end(err error) {
	if b.err == nil {
		b.err = err
	}
	b.done = true
}

func (bs *batches) replySubject(id string, seq uint64, op int) string {
	return bs.inbox + "." + id + "." + strconv.Itoa(batchFlow) + ".fail." + strconv.FormatUint(seq, 10) + "." + strconv.Itoa(op) + ".$FI"
}

// send publishes msgs as one batch, in order, and returns once they are sent, with the function
// that waits for the stream's acknowledgement: as Publisher.Send.
func (bs *batches) send(ctx context.Context, msgs []Msg) func(context.Context) ([]int, error) {
	failed := func(err error) func(context.Context) ([]int, error) {
		return func(context.Context) ([]int, error) { return nil, err }
	}
	if err := bs.subscribe(); err != nil {
		return failed(err)
	}
	id := bs.nc.NewInbox()[len(nats.InboxPrefix):] // a unique token, no dot
	b := &batch{subject: msgs[0].Subject, window: batchOutstanding, changed: make(chan struct{}, 1)}
	bs.mu.Lock()
	bs.pending[id] = b
	bs.mu.Unlock()
	forget := func() {
		bs.mu.Lock()
		delete(bs.pending, id)
		bs.mu.Unlock()
	}
	var sendErr error
	// One header for all the messages: PublishMsg encodes it before it returns.
	id1 := []string{""}
	hdr := nats.Header{nats.MsgIdHdr: id1, nats.ExpectedStreamHdr: []string{bs.stream}}
	for i, m := range msgs {
		seq := uint64(i + 1)
		if err := bs.waitFor(ctx, id, b, func() bool { return b.done || b.err != nil || seq <= b.acked+b.window }); err != nil {
			sendErr = err
			break
		}
		bs.mu.Lock()
		stop := b.done || b.err != nil
		bs.mu.Unlock()
		if stop {
			break
		}
		op := batchOpAppend
		switch {
		case i == len(msgs)-1:
			op = batchOpCommit
		case i == 0:
			op = batchOpStart
		}
		id1[0] = m.ID
		err := bs.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Reply: bs.replySubject(id, seq, op), Data: m.Data, Header: hdr})
		if err != nil {
			sendErr = fmt.Errorf("publish to %s: %w", m.Subject, unavailable(err))
			break
		}
		bs.mu.Lock()
		b.sent = seq
		bs.mu.Unlock()
	}
	return func(ctx context.Context) ([]int, error) {
		defer forget()
		err := bs.waitFor(ctx, id, b, func() bool { return b.done })
		bs.mu.Lock()
		acked, ackErr := b.acked, b.err
		bs.mu.Unlock()
		if err != nil && ackErr == nil {
			ackErr = err
		}
		n := min(int(acked), len(msgs))
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		if n < len(msgs) {
			m := msgs[n]
			if ackErr == nil {
				ackErr = errors.New("the batch ended before it")
			}
			ackErr = fmt.Errorf("message %s to %s not acknowledged (and %d after it): %w", m.ID, m.Subject, len(msgs)-n-1, ackErr)
			return idx, errors.Join(sendErr, ackErr)
		}
		return idx, nil
	}
}

// waitFor waits until ready (called under bs.mu) says so. When the stream acknowledges nothing for
// a third of the acknowledgement timeout, it asks for the last flow acknowledgement again (the
// stream also says then whether a message sent did not reach it); after the whole timeout, or when
// the connection is lost, the batch ends with an error.
func (bs *batches) waitFor(ctx context.Context, id string, b *batch, ready func() bool) error {
	quiet := bs.ackTimeout / 3
	tick := min(quiet, time.Second)
	progress, pinged := time.Now(), time.Now()
	var last uint64
	for {
		bs.mu.Lock()
		ok, acked, sent := ready(), b.acked, b.sent
		bs.mu.Unlock()
		if ok {
			return nil
		}
		if acked != last {
			last, progress = acked, time.Now()
		}
		fail := func(err error) error {
			bs.mu.Lock()
			b.end(err)
			bs.mu.Unlock()
			return err
		}
		switch {
		case !bs.nc.IsConnected():
			return fail(fmt.Errorf("%w (connection %s)", ErrUnavailable, strings.ToLower(bs.nc.Status().String())))
		case time.Since(progress) >= bs.ackTimeout:
			return fail(fmt.Errorf("no acknowledgement within %s", bs.ackTimeout))
		case time.Since(progress) >= quiet && time.Since(pinged) >= quiet && sent > 0:
			pinged = time.Now()
			_ = bs.nc.PublishMsg(&nats.Msg{Subject: b.subject, Reply: bs.replySubject(id, sent, batchOpPing)})
		}
		t := time.NewTimer(tick)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
		case <-b.changed:
			t.Stop()
		case <-t.C:
		}
	}
}
