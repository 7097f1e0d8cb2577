package activities

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/natsjs/natstest"
	"github.com/txflow/txflow/postgres"
)

// BenchmarkPublishToJetStream measures what delivery costs with nothing else running: b.N
// messages as Publish makes them (TransactionMsg, a Nats-Msg-Id each), in slices of
// DefaultPublishSlice with two slices at the broker at once, through natsjs.Publisher with fast
// batches, to an embedded NATS server (natstest, a file store) in this process, stored in
// EnsureStream's stream and acknowledged. It reports messages per second and the process's CPU
// (client and server) per message: the ceiling a run's Publish stage works under on the same
// machine.
//
//	go test -run '^$' -bench PublishToJetStream -benchtime 1000000x ./activities/
func BenchmarkPublishToJetStream(b *testing.B) {
	srv := natstest.Start(b)
	nc, err := natsjs.Connect(srv.URL(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	p, err := natsjs.NewPublisher(nc, natsjs.DefaultStream, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := natsjs.EnsureStream(ctx, p.JetStream(), natsjs.DefaultStream); err != nil {
		b.Fatal(err)
	}
	p.UseBatches(true)

	tag, annotation := "TAXI", "SMALL EXPENSE"
	slices := make(chan []natsjs.Msg, 2)
	go func() { // encoded ahead, as Publish reads and encodes the next slice while one is sent
		defer close(slices)
		for from := 0; from < b.N; from += DefaultPublishSlice {
			msgs := make([]natsjs.Msg, min(DefaultPublishSlice, b.N-from))
			for i := range msgs {
				n := int64(from + i)
				m := postgres.OutboxMessage{OutboxKey: postgres.OutboxKey{Key: 1<<32 + n, Version: 1},
					RunID: "txflow-1b2666569dcef9c4", Account: "acme", ID: fmt.Sprintf("TX-%09d", n),
					Date: "2026-01-31", Amount: "-12.50", Wording: "TAXI PARIS 75001 CB*1234", Tag: &tag, Annotation: &annotation}
				var err error
				if msgs[i], err = TransactionMsg(m); err != nil {
					b.Error(err)
					return
				}
			}
			slices <- msgs
		}
	}()

	cpu0 := processCPU(b)
	began := time.Now()
	b.ResetTimer()
	type sent struct {
		n    int
		wait func(context.Context) ([]int, error)
	}
	var waits []sent
	waitOldest := func() {
		acked, err := waits[0].wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(acked) != waits[0].n {
			b.Fatalf("%d of %d messages acknowledged", len(acked), waits[0].n)
		}
		waits = waits[1:]
	}
	for msgs := range slices {
		if len(waits) == 2 {
			waitOldest()
		}
		waits = append(waits, sent{len(msgs), p.Send(ctx, msgs)})
	}
	for len(waits) > 0 {
		waitOldest()
	}
	b.StopTimer()
	elapsed, cpu := time.Since(began), processCPU(b)-cpu0
	info, err := p.JetStream().Stream(ctx, natsjs.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	if st := info.CachedInfo().State; st.Msgs != uint64(b.N) {
		b.Fatalf("the stream holds %d messages, %d published", st.Msgs, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
