package txn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// result is everything one Read delivered.
type result struct {
	records  []Record
	rejected []Rejected
	stats    Stats
	err      error
}

func readString(t *testing.T, s string, opts ReaderOptions) result {
	t.Helper()
	res := readFrom(t, strings.NewReader(s), opts)
	if res.err == nil {
		// Counted here independently of the reader.
		lines := int64(strings.Count(s, "\n"))
		if s != "" && !strings.HasSuffix(s, "\n") {
			lines++
		}
		assert.Equal(t, lines, res.stats.Lines, "physical lines")
	}
	return res
}

func readFile(t *testing.T, name string, opts ReaderOptions) result {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	return readFrom(t, f, opts)
}

func readFrom(t *testing.T, r io.Reader, opts ReaderOptions) result {
	t.Helper()
	var res result
	res.stats, res.err = Read(r, opts,
		func(rec Record) error { res.records = append(res.records, rec); return nil },
		func(rej Rejected) error { res.rejected = append(res.rejected, rej); return nil })
	if res.err == nil {
		header := int64(1)
		if res.stats.NoHeaderRow {
			header = 0
		}
		assert.Equal(t, res.stats.Lines, header+res.stats.SkippedLines+res.stats.AcceptedLines+res.stats.RejectedLines, "line accounting")
		assert.Equal(t, res.stats.Records, res.stats.Accepted+res.stats.Rejected)
		assert.Equal(t, int64(len(res.records)), res.stats.Accepted)
		assert.Equal(t, int64(len(res.rejected)), res.stats.Rejected)
	}
	return res
}

// summary renders a record as "line id amount wording" for compact assertions.
func (r Record) summary() string {
	return fmt.Sprintf("%d %s %s %q", r.Line, r.ID, r.Amount.StringFixed(2), r.Wording)
}

func summaries(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.summary()
	}
	return out
}

func TestReadAcceptedFiles(t *testing.T) {
	tests := []struct {
		file     string
		want     []string
		delim    rune
		encoding string
		header   int64
	}{
		{
			file: "basic.csv", delim: ',', encoding: EncodingUTF8, header: 1,
			want: []string{`2 1 12.50 "CB TAXI PARIS"`, `3 2 -300.01 "LOYER MARS"`, `4 3 0.00 "TATA ET TOTO"`},
		},
		{
			file: "alias_montant_libelle.csv", delim: ';', encoding: EncodingUTF8, header: 1,
			want: []string{`2 1 12.50 "CB TAXI"`, `3 2 -1234.56 "PRLV TOTO"`},
		},
		{
			file: "alias_label_order_extra.csv", delim: ',', encoding: EncodingUTF8, header: 1,
			want: []string{`2 A1 -5.00 "CB TUTU"`, `3 A2 2500.00 "VIR SALAIRE"`},
		},
		{
			file: "tab.tsv", delim: '\t', encoding: EncodingUTF8, header: 1,
			want: []string{`2 T1 12.50 "TAXI"`, `3 T2 -3.10 "TOTO TUTU"`},
		},
		{
			file: "bom_crlf.csv", delim: ',', encoding: EncodingUTF8, header: 1,
			want: []string{`2 1 10.00 "CB TAXI"`, `3 2 -20.00 "multi\nline"`, `6 3 30.00 "LAST"`},
		},
		{
			file: "latin1.csv", delim: ';', encoding: EncodingWindows1252, header: 1,
			want: []string{`2 1 12.50 "CAFÉ DE LA GARE"`, `3 2 -3.00 "CRÈCHE « TOTO »"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := readFile(t, tt.file, ReaderOptions{})
			require.NoError(t, res.err)
			assert.Equal(t, tt.want, summaries(res.records))
			assert.Empty(t, res.rejected)
			assert.Equal(t, tt.delim, res.stats.Delimiter)
			assert.Equal(t, tt.encoding, res.stats.Encoding)
			assert.Equal(t, tt.header, res.stats.HeaderLine)
		})
	}
}

func TestReadKeepsRawAmount(t *testing.T) {
	res := readString(t, "id;amount;wording\n1; 1 234,50 ;X\n", ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.records, 1)
	assert.Equal(t, " 1 234,50 ", res.records[0].RawAmount)
	assert.Equal(t, "1234.5", res.records[0].Amount.String())
	assert.Equal(t, Reason(""), res.records[0].Error)
}

func TestReadTrimsID(t *testing.T) {
	res := readString(t, "id,amount,wording\n  X-1  ,1.00,  spaced wording  \n", ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.records, 1)
	assert.Equal(t, "X-1", res.records[0].ID)
	assert.Equal(t, "  spaced wording  ", res.records[0].Wording)
}

func TestReadDecimalComma(t *testing.T) {
	res := readFile(t, "semicolon_decimal_comma.csv", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, []string{`2 1 1234.50 "VIR"`, `3 2 -12.00 "AVOIR"`, `4 3 12.50 "DOT STILL OK"`}, summaries(res.records))
	require.Len(t, res.rejected, 1)
	assert.Equal(t, int64(5), res.rejected[0].Line)
	assert.Equal(t, ReasonInvalidAmount, res.rejected[0].Reason)
	assert.Equal(t, "1.234,50", res.rejected[0].Amount)
}

func TestReadCommaDelimiterRefusesDecimalComma(t *testing.T) {
	res := readString(t, "id,amount,wording\n1,\"12,50\",X\n2,\"1,234.50\",Y\n", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, []string{`3 2 1234.50 "Y"`}, summaries(res.records))
	require.Len(t, res.rejected, 1)
	assert.Equal(t, Rejected{Line: 2, ID: "1", Amount: "12,50", Wording: "X", Reason: ReasonInvalidAmount,
		Detail: "invalid amount: misplaced thousands separator"}, res.rejected[0])
}

func TestReadRejections(t *testing.T) {
	res := readFile(t, "rejections.csv", ReaderOptions{MaxFieldBytes: 24})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		`2 1 10.00 "TAXI"`,
		`7 6 7.00 "multi\nline\nwording"`,
		`14 10 -2.00 "after blank line"`,
		`15 11 1234.50 "quoted, comma"`,
	}, summaries(res.records))

	type rej struct {
		line   int64
		id     string
		reason Reason
		detail string
	}
	var got []rej
	for _, r := range res.rejected {
		got = append(got, rej{r.Line, r.ID, r.Reason, r.Detail})
	}
	assert.Equal(t, []rej{
		{3, "", ReasonMissingID, "id is empty"},
		{4, "   ", ReasonMissingID, "id is empty"},
		{5, "4", ReasonInvalidAmount, `invalid amount: unexpected character 'a'`},
		{6, "5", ReasonInvalidAmount, "invalid amount: more than two decimal digits"},
		{10, "7", ReasonMalformedRow, "expected 4 fields, found 3"},
		{11, "8", ReasonMalformedRow, "expected 4 fields, found 5"},
		{12, "9", ReasonMalformedRow, `csv syntax error: bare " in non-quoted-field`},
		{16, "13", ReasonFieldTooLong, "wording is 56 bytes long, limit 24"},
		{17, "12", ReasonMalformedRow, `csv syntax error: extraneous or missing " in quoted-field`},
	}, got)
	assert.Equal(t, Stats{Records: 13, Accepted: 4, Rejected: 9, Delimiter: ',', Encoding: EncodingUTF8, HeaderLine: 1,
		Lines: 17, SkippedLines: 1, AcceptedLines: 6, RejectedLines: 9}, res.stats)

	// Raw values are kept as read.
	assert.Equal(t, Rejected{Line: 5, ID: "4", Amount: "abc", Wording: "bad amount", Reason: ReasonInvalidAmount,
		Detail: `invalid amount: unexpected character 'a'`}, res.rejected[2])
	assert.Equal(t, "too", res.rejected[5].Wording)
	assert.Equal(t, "this wording is definitely longer than twenty-four bytes", res.rejected[7].Wording)
}

func TestReadFieldTooLongID(t *testing.T) {
	id := strings.Repeat("9", DefaultMaxFieldBytes+1)
	res := readString(t, "id,amount,wording\n"+id+",1.00,X\n2,1.00,"+strings.Repeat("w", DefaultMaxFieldBytes)+"\n", ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonFieldTooLong, res.rejected[0].Reason)
	assert.Equal(t, "id is 4097 bytes long, limit 4096", res.rejected[0].Detail)
	require.Len(t, res.records, 1, "a wording of exactly the limit is accepted")
}

func TestReadInvalidUTF8AfterSniffedPrefix(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,amount,wording\n")
	line := 1
	for b.Len() < 2*sniffSize {
		line++
		fmt.Fprintf(&b, "%d,1.00,CAFÉ\n", line)
	}
	line++
	fmt.Fprintf(&b, "%d,2.00,CAF\xc9 LATIN-1\n", line) // Windows-1252 É in a UTF-8 file
	line++
	fmt.Fprintf(&b, "%d,3.00,NUL\x00BYTE\n", line)
	fmt.Fprintf(&b, "%d,4.00,OK\n", line+1)

	res := readString(t, b.String(), ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingUTF8, res.stats.Encoding)
	require.Len(t, res.rejected, 2)
	assert.Equal(t, Rejected{Line: int64(line - 1), ID: fmt.Sprint(line - 1), Amount: "2.00", Wording: "CAF\uFFFD LATIN-1",
		Reason: ReasonInvalidEncoding, Detail: "invalid UTF-8 text"}, res.rejected[0])
	assert.Equal(t, Rejected{Line: int64(line), ID: fmt.Sprint(line), Amount: "3.00", Wording: "NULBYTE",
		Reason: ReasonMalformedRow, Detail: "NUL byte in field"}, res.rejected[1])
	last := res.records[len(res.records)-1]
	assert.Equal(t, fmt.Sprintf(`%d %d 4.00 "OK"`, line+1, line+1), last.summary())
	assert.Equal(t, int64(line-1), res.stats.Accepted+res.stats.Rejected-1)
}

func TestReadFileErrors(t *testing.T) {
	tests := []struct {
		file   string
		reason string
		msg    string
	}{
		{"empty.csv", FileEmpty, "empty file: expected a header line and data rows; found no text"},
		{"blank_lines_only.csv", FileEmpty, ""},
		{"header_only.csv", FileHeaderOnly, "header only: expected at least one data row after the header; found no data row"},
		{"header_then_blank.csv", FileHeaderOnly, ""},
		{"session_expired.html", FileHTML, `HTML document: expected CSV text; found "<!DOCTYPE html>"`},
		{"archive.zip", FileBinary, "binary file: expected CSV text; found a NUL byte at offset 5"},
		{"wrong_columns.csv", FileNoHeader, `no usable header: expected columns id, amount (or montant), wording (or label, libelle, libellé); found "foo,bar"`},
		{"ambiguous_columns.csv", FileNoHeader, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := readFile(t, tt.file, ReaderOptions{})
			var fe *FileError
			require.ErrorAs(t, res.err, &fe)
			assert.Equal(t, tt.reason, fe.Reason)
			if tt.msg != "" {
				assert.Equal(t, tt.msg, fe.Error())
			}
			assert.Empty(t, res.records)
			assert.Empty(t, res.rejected)
		})
	}
}

func TestReadMoreFileErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		reason string
	}{
		{"utf-16", "\xff\xfei\x00d\x00", FileUnsupportedText},
		{"bom only", "\xef\xbb\xbf", FileEmpty},
		{"one column", "id\n1\n", FileNoHeader},
		{"missing wording", "id;amount\n1;2\n", FileNoHeader},
		{"xml", "  <?xml version=\"1.0\"?><a/>", FileHTML},
		{"control bytes", "\x01\x02\x03\x04id,amount,wording\n", FileBinary},
		{"header line too long", strings.Repeat("x", sniffSize+10), FileNoHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readString(t, tt.in, ReaderOptions{})
			var fe *FileError
			require.ErrorAs(t, res.err, &fe)
			assert.Equal(t, tt.reason, fe.Reason)
		})
	}
}

func TestReadUnterminatedQuoteIsBounded(t *testing.T) {
	in := "id,amount,wording\n1,1.00,ok\n2,1.00,\"never closed\n" + strings.Repeat("3,1.00,kept\n", 10000)
	for _, limit := range []int{64 << 10, 0} {
		res := readString(t, in, ReaderOptions{MaxRecordBytes: limit})
		require.NoError(t, res.err)
		require.Len(t, res.rejected, 1)
		assert.Equal(t, int64(3), res.rejected[0].Line)
		assert.Equal(t, ReasonMalformedRow, res.rejected[0].Reason)
		assert.Len(t, res.records, 10001, "the rows after the unterminated quote are read")
	}
}

func TestReadCallbackErrorStopsRead(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,amount,wording\n")
	for i := range 50000 {
		fmt.Fprintf(&b, "%d,1.00,X\n", i)
	}
	boom := errors.New("boom")
	calls := 0
	stats, err := Read(strings.NewReader(b.String()), ReaderOptions{},
		func(Record) error {
			calls++
			if calls == 3 {
				return boom
			}
			return nil
		},
		func(Rejected) error { return nil })
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 3, calls)
	assert.Equal(t, int64(3), stats.Accepted)

	stats, err = Read(strings.NewReader("id,amount,wording\n,1,X\n1,1,Y\n"), ReaderOptions{},
		func(Record) error { t.Fatal("onRecord called after onRejected failed"); return nil },
		func(Rejected) error { return boom })
	require.ErrorIs(t, err, boom)
	assert.Equal(t, int64(1), stats.Rejected)
}

// failingReader returns data then a non-EOF error.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadIOError(t *testing.T) {
	diskErr := errors.New("disk on fire")
	var b bytes.Buffer
	b.WriteString("id,amount,wording\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "%d,1.00,X\n", i)
	}
	res := readFrom(t, &failingReader{data: b.Bytes(), err: diskErr}, ReaderOptions{})
	require.ErrorIs(t, res.err, diskErr)
	var fe *FileError
	assert.False(t, errors.As(res.err, &fe))
	assert.NotEmpty(t, res.records)

	res = readFrom(t, &failingReader{err: diskErr}, ReaderOptions{})
	require.ErrorIs(t, res.err, diskErr)
}

func TestReadHeaderVariants(t *testing.T) {
	tests := []struct{ name, header string }{
		{"upper case", "ID,AMOUNT,WORDING"},
		{"padded", "  id  ,  amount , wording  "},
		{"quoted", `"id","montant","libellé"`},
		{"accented upper", "Id,Montant,LIBELLÉ"},
		{"decomposed accent", "id,amount,libelle\u0301"},
		{"label", "id,amount,Label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readString(t, "\n\n"+tt.header+"\n1,2.00,W\n", ReaderOptions{})
			require.NoError(t, res.err)
			assert.Equal(t, int64(3), res.stats.HeaderLine)
			assert.Equal(t, []string{`4 1 2.00 "W"`}, summaries(res.records))
		})
	}
}
