package txn

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// benchFile generates a realistic file of n rows.
func benchFile(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 48)
	b.WriteString("id;montant;libellé\r\n")
	words := []string{"CB TAXI G7 PARIS", "PRLV SEPA EDF", "VIR SALAIRE TOTO", "CB CAFE DE LA GARE", "\"RETRAIT; DAB\""}
	for i := range n {
		fmt.Fprintf(&b, "TX%08d;%d,%02d;%s\r\n", i, (i%20000)-10000, i%100, words[i%len(words)])
	}
	return b.Bytes()
}

func BenchmarkRead(b *testing.B) {
	const rows = 1_000_000
	data := benchFile(rows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var sum int64
		stats, err := Read(bytes.NewReader(data), ReaderOptions{},
			func(r Record) error { sum += r.Line; return nil },
			func(Rejected) error { return errors.New("unexpected rejection") })
		if err != nil || stats.Accepted != rows {
			b.Fatalf("read: %v, %+v", err, stats)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rows, "ns/row")
}

// TestReadMillionRowsFast guards the throughput budget: one million rows in
// well under two seconds. It is skipped with -short and under the race
// detector, which slows everything down.
func TestReadMillionRowsFast(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("throughput check skipped in short mode and under the race detector")
	}
	const rows = 1_000_000
	data := benchFile(rows)
	start := time.Now()
	stats, err := Read(bytes.NewReader(data), ReaderOptions{},
		func(Record) error { return nil },
		func(r Rejected) error { return fmt.Errorf("line %d: %s", r.Line, r.Detail) })
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Accepted != rows {
		t.Fatalf("accepted %d rows, want %d", stats.Accepted, rows)
	}
	t.Logf("%d rows in %v (%.0f ns/row)", rows, elapsed, float64(elapsed.Nanoseconds())/rows)
	if limit := 2 * time.Second; elapsed > limit {
		t.Fatalf("reading %d rows took %v, budget %v", rows, elapsed, limit)
	}
}
