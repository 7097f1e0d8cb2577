package txn

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lines returns the first line of each accepted record and rejected row.
func (r result) lines() (accepted, rejected []int64) {
	for _, rec := range r.records {
		accepted = append(accepted, rec.Line)
	}
	for _, rej := range r.rejected {
		rejected = append(rejected, rej.Line)
	}
	return accepted, rejected
}

// seq returns the integers from a to b included.
func seq(a, b int64) []int64 {
	var out []int64
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

func TestReadUnterminatedQuoteResyncs(t *testing.T) {
	valid := func(from, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%d,1.00,ROW %d\n", from+i, from+i)
		}
		return b.String()
	}
	const head = "id,amount,wording\n"
	// Rows long enough that 25000 of them exceed 1 MiB.
	var big strings.Builder
	for i := range 25000 {
		fmt.Fprintf(&big, "%d,1.00,%s\n", 100+i, strings.Repeat("w", 40))
	}
	require.Greater(t, big.Len(), 1<<20)

	tests := []struct {
		name     string
		in       string
		accepted []int64
		rejected []int64
		wording  string // of the rejected row
	}{
		{
			name:     "middle",
			in:       head + "1,1.00,A\n10,10.00,\"PAYMENT ACME\n2,2.00,B\n3,3.00,C\n",
			accepted: []int64{2, 4, 5},
			rejected: []int64{3},
			wording:  "PAYMENT ACME",
		},
		{
			name:     "last line",
			in:       head + "1,1.00,A\n2,2.00,B\n10,10.00,\"PAYMENT ACME",
			accepted: []int64{2, 3},
			rejected: []int64{4},
			wording:  "PAYMENT ACME",
		},
		{
			name:     "last line with line end",
			in:       head + "1,1.00,A\n10,10.00,\"PAYMENT ACME\n",
			accepted: []int64{2},
			rejected: []int64{3},
			wording:  "PAYMENT ACME",
		},
		{
			name:     "followed by many valid rows",
			in:       head + "10,10.00,\"PAYMENT ACME\n" + valid(1, 5000),
			accepted: seq(3, 5002),
			rejected: []int64{2},
			wording:  "PAYMENT ACME",
		},
		{
			name:     "followed by more than 1 MiB",
			in:       head + "1,1.00,A\n10,10.00,\"PAYMENT ACME\n" + big.String(),
			accepted: append([]int64{2}, seq(4, 25003)...),
			rejected: []int64{3},
			wording:  "PAYMENT ACME",
		},
		{
			name:     "closed by a later quoted field",
			in:       head + "10,10.00,\"PAYMENT ACME\n11,5.00,\"OTHER\"\n12,6.00,X\n",
			accepted: []int64{3, 4},
			rejected: []int64{2},
			wording:  "PAYMENT ACME",
		},
		{
			name:     "two in a row",
			in:       head + "10,10.00,\"PAYMENT\n11,5.00,\"OTHER\n12,6.00,X\n",
			accepted: []int64{4},
			rejected: []int64{2, 3},
			wording:  "PAYMENT",
		},
		{
			name:     "in the id",
			in:       head + "\"10,10.00,PAYMENT\n" + valid(1, 3),
			accepted: []int64{3, 4, 5},
			rejected: []int64{2},
			wording:  "",
		},
		{
			name:     "crlf",
			in:       strings.ReplaceAll(head+"1,1.00,A\n10,10.00,\"PAYMENT ACME\n2,2.00,B\n", "\n", "\r\n"),
			accepted: []int64{2, 4},
			rejected: []int64{3},
			wording:  "PAYMENT ACME",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readString(t, tt.in, ReaderOptions{})
			require.NoError(t, res.err)
			accepted, rejected := res.lines()
			assert.Equal(t, tt.accepted, accepted)
			assert.Equal(t, tt.rejected, rejected)
			for _, r := range res.rejected {
				assert.Equal(t, ReasonMalformedRow, r.Reason)
				assert.Equal(t, `csv syntax error: extraneous or missing " in quoted-field`, r.Detail)
			}
			assert.Equal(t, tt.wording, res.rejected[0].Wording)
			assert.Equal(t, int64(len(tt.accepted)), res.stats.AcceptedLines)
			assert.Equal(t, int64(len(tt.rejected)), res.stats.RejectedLines)
			assert.Equal(t, int64(0), res.stats.SkippedLines)
		})
	}
}

func TestReadUnterminatedQuoteAtRecordLimit(t *testing.T) {
	// The rows after the quote are read again once the open field reaches
	// the record limit, and a row that is itself too long is rejected.
	in := "id,amount,wording\n1,1.00,\"open\n" + strings.Repeat("2,2.00,ok\n", 100) +
		"3,3.00," + strings.Repeat("x", 300) + "\n4,4.00,end\n"
	res := readString(t, in, ReaderOptions{MaxRecordBytes: 200})
	require.NoError(t, res.err)
	accepted, rejected := res.lines()
	assert.Equal(t, append(seq(3, 102), 104), accepted)
	assert.Equal(t, []int64{2, 103}, rejected)
	assert.Equal(t, "line longer than 200 bytes", res.rejected[1].Detail)
	assert.Equal(t, "3", res.rejected[1].ID)
}

func TestReadMultilineFieldLinesAccounted(t *testing.T) {
	in := "id;montant;libellé\n\n1;1,00;\"a\nb\n\nc\"\n;;\n2;x;\"bad\namount\"\n;;\"\n\"\n\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, []string{`3 1 1.00 "a\nb\n\nc"`}, summaries(res.records))
	require.Len(t, res.rejected, 1)
	assert.Equal(t, int64(8), res.rejected[0].Line)
	assert.Equal(t, Stats{Records: 2, Accepted: 1, Rejected: 1, Delimiter: ';', Encoding: EncodingUTF8, HeaderLine: 1,
		Lines: 12, SkippedLines: 5, AcceptedLines: 4, RejectedLines: 2}, res.stats)
}

func TestCheckLinesReportsMismatch(t *testing.T) {
	err := checkLines(Stats{Lines: 10, SkippedLines: 2, AcceptedLines: 4, RejectedLines: 1})
	var fe *FileError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, FileLineCount, fe.Reason)
	assert.Equal(t, "line count mismatch: expected 8 lines (1 header, 2 skipped, 4 in accepted rows, 1 in rejected rows); found 10 lines in the file", fe.Error())
	assert.NoError(t, checkLines(Stats{Lines: 8, SkippedLines: 2, AcceptedLines: 4, RejectedLines: 1}))
}

func TestReadRunsInCallingGoroutine(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,amount,wording\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "%d,1.00,X\n", i)
	}
	before := runtime.NumGoroutine()
	most := 0
	stop := errors.New("stop")
	_, err := Read(strings.NewReader(b.String()), ReaderOptions{},
		func(r Record) error {
			most = max(most, runtime.NumGoroutine())
			if r.Line == 4000 {
				return stop
			}
			return nil
		},
		func(Rejected) error { return nil })
	require.ErrorIs(t, err, stop)
	assert.Equal(t, before, most, "Read starts no goroutine")
}

func TestReadHugeLines(t *testing.T) {
	huge := strings.Repeat("y", 2<<20)
	in := "id,amount,wording\n1,1.00,\"open\n2,2.00," + huge + "\n3,3.00,ok\n4,4.00," + huge + "\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	accepted, rejected := res.lines()
	assert.Equal(t, []int64{4}, accepted)
	assert.Equal(t, []int64{2, 3, 5}, rejected)
	assert.Equal(t, `csv syntax error: extraneous or missing " in quoted-field`, res.rejected[0].Detail)
	assert.Equal(t, "line longer than 1048576 bytes", res.rejected[1].Detail)
	assert.Equal(t, "2", res.rejected[1].ID)
	assert.Equal(t, "4", res.rejected[2].ID)
}
