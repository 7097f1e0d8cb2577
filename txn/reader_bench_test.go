package txn

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
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
