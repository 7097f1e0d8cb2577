package postgres

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeInPieces writes b to w in pieces of the sizes next returns.
func writeInPieces(t *testing.T, w io.Writer, b []byte, next func() int) {
	t.Helper()
	for len(b) > 0 {
		n := min(next(), len(b))
		_, err := w.Write(b[:n])
		require.NoError(t, err)
		b = b[n:]
	}
}

// TestOutputCounterCountsTheTagAndAnnotationColumns feeds the golden output file to the counter in
// pieces of every size: quoted fields with commas, quotes and a line break do not shift columns.
func TestOutputCounterCountsTheTagAndAnnotationColumns(t *testing.T) {
	golden, err := os.ReadFile("testdata/output_transactions.csv")
	require.NoError(t, err)
	for size := 1; size <= len(golden); size++ {
		var out bytes.Buffer
		c := &outputCounter{w: &out}
		writeInPieces(t, c, golden, func() int { return size })
		require.NoError(t, c.err)
		require.Equal(t, OutputCounts{Rows: 7, Tagged: 3, Annotated: 5}, c.counts, "pieces of %d bytes", size)
		require.Equal(t, string(golden), out.String(), "the bytes pass through unchanged")
	}
}

// TestOutputCounterAgreesWithACSVReader compares the counter with encoding/csv on random rows
// whose fields hold commas, quotes, line breaks or nothing, written in random pieces.
func TestOutputCounterAgreesWithACSVReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"", "a", "TAXI", ",", `"`, "\n", " ", "é", `""`, "\r\n"}
	field := func() string {
		var b strings.Builder
		for range rng.IntN(4) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for round := range 200 {
		var file bytes.Buffer
		w := csv.NewWriter(&file)
		require.NoError(t, w.Write(outputColumnNames[:]))
		var want OutputCounts
		for range rng.IntN(20) {
			rec := make([]string, outputColumns)
			for i := range rec {
				rec[i] = field()
			}
			require.NoError(t, w.Write(rec))
			want.Rows++
			if rec[colTag] != "" {
				want.Tagged++
			}
			if rec[colAnnotation] != "" {
				want.Annotated++
			}
		}
		w.Flush()
		require.NoError(t, w.Error())
		c := &outputCounter{w: io.Discard}
		writeInPieces(t, c, file.Bytes(), func() int { return 1 + rng.IntN(16) })
		require.NoError(t, c.err, "round %d:\n%s", round, file.String())
		require.Equal(t, want, c.counts, "round %d:\n%s", round, file.String())
	}
}

// TestOutputCounterRefusesARowOfAnotherShape checks that a row without the output's columns is an
// error, not a count taken from the wrong column.
func TestOutputCounterRefusesARowOfAnotherShape(t *testing.T) {
	c := &outputCounter{w: io.Discard}
	_, err := c.Write([]byte("id,amount,wording,tag,annotation,error\nT1,1.00,TAXI,TAXI,SALE\n"))
	require.ErrorContains(t, err, "a row of 5 fields, 6 expected")
	_, err = c.Write([]byte("T2,1.00,TAXI,TAXI,SALE,\n"))
	require.Error(t, err, "the counter stays failed")
}

// TestOutputCounterPassesWriteErrorsOn checks that the destination's error reaches the caller.
func TestOutputCounterPassesWriteErrorsOn(t *testing.T) {
	boom := errors.New("disk full")
	c := &outputCounter{w: failingWriter{boom}}
	_, err := c.Write([]byte("id,amount,wording,tag,annotation,error\n"))
	require.ErrorIs(t, err, boom)
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// BenchmarkOutputCounter measures the counting of a million output rows as COPY writes them.
func BenchmarkOutputCounter(b *testing.B) {
	var file bytes.Buffer
	file.WriteString("id,amount,wording,tag,annotation,error\n")
	for i := range 1_000_000 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&file, "B%d,-%d.50,CARD PAYMENT TAXI PARIS,TAXI,SMALL EXPENSE,\n", i, i%500)
		case 1:
			fmt.Fprintf(&file, "B%d,%d.05,\"STORE, LYON\",,SALE,\n", i, i%500)
		default:
			fmt.Fprintf(&file, "B%d,2500000.00,SALARY TOTO,TOTO,,amount_too_high\n", i)
		}
	}
	data := file.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := &outputCounter{w: io.Discard}
		for rest := data; len(rest) > 0; {
			// COPY hands over one row per message.
			n := bytes.IndexByte(rest, '\n') + 1
			if _, err := c.Write(rest[:n]); err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
		if c.counts.Rows != 1_000_000 {
			b.Fatalf("%+v", c.counts)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/row")
}
