package txn

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// asciiRows returns n ASCII rows numbered from 1, of at least size bytes in all.
func asciiRows(size int) (string, int) {
	var b strings.Builder
	n := 0
	for b.Len() < size {
		n++
		fmt.Fprintf(&b, "%d;1,00;CAFE %d\n", n, n)
	}
	return b.String(), n
}

func TestReadWindows1252DecidedAfterFirst64KiB(t *testing.T) {
	rows, n := asciiRows(2 * sniffSize)
	in := "id;montant;libelle\n" + rows + fmt.Sprintf("%d;2,00;CAF\xc9 CR\xc8ME \x80\n", n+1) + fmt.Sprintf("%d;3,00;\xe0 la gare\n", n+2)
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
	assert.Empty(t, res.rejected)
	require.Len(t, res.records, n+2)
	assert.Equal(t, "CAFÉ CRÈME €", res.records[n].Wording)
	assert.Equal(t, "à la gare", res.records[n+1].Wording)
}

func TestReadUTF8DecidedAfterFirst64KiB(t *testing.T) {
	rows, n := asciiRows(2 * sniffSize)
	in := "id;montant;libelle\n" + rows + fmt.Sprintf("%d;2,00;CAFÉ\n", n+1) + fmt.Sprintf("%d;3,00;CAF\xc9\n", n+2)
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingUTF8, res.stats.Encoding)
	require.Len(t, res.records, n+1)
	assert.Equal(t, "CAFÉ", res.records[n].Wording)
	require.Len(t, res.rejected, 1)
	assert.Equal(t, Rejected{Line: int64(n + 3), ID: fmt.Sprint(n + 2), Amount: "3,00", Wording: "CAF\uFFFD",
		Reason: ReasonInvalidEncoding, Detail: "invalid UTF-8 text"}, res.rejected[0])
}

func TestReadUTF8RowInWindows1252File(t *testing.T) {
	// An early Windows-1252 byte decides the file; a UTF-8 row later is
	// rejected, never stored as mojibake ("CAFÃ‰").
	rows, n := asciiRows(2 * sniffSize)
	in := "id;montant;libelle\n1;1,00;CAF\xc9\n" + rows +
		"u1;2,00;CAFÉ\n" + // UTF-8
		"u2;2,00;CAF\xc9 CAFÉ\n" + // both
		"u3;2,00;OK \x81\n" + // undefined in Windows-1252
		"u4;2,00;CR\xc8ME\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
	require.Len(t, res.records, n+2)
	assert.Equal(t, "CAFÉ", res.records[0].Wording)
	assert.Equal(t, "CRÈME", res.records[n+1].Wording)
	type rej struct {
		id, wording string
		reason      Reason
		detail      string
	}
	var got []rej
	for _, r := range res.rejected {
		got = append(got, rej{r.ID, r.Wording, r.Reason, r.Detail})
		assert.NotContains(t, r.Wording, "Ã")
	}
	assert.Equal(t, []rej{
		{"u1", "CAFÉ", ReasonInvalidEncoding, "UTF-8 text in a Windows-1252 file"},
		{"u2", "CAF\uFFFD CAFÉ", ReasonInvalidEncoding, "UTF-8 text in a Windows-1252 file"},
		{"u3", "OK \uFFFD", ReasonInvalidEncoding, "byte 0x81 is not Windows-1252 text"},
	}, got)
}

func TestReadEncodingDecidedByHeaderOrPreamble(t *testing.T) {
	// The first non-ASCII byte decides, wherever it is.
	res := readString(t, "Relevé de compte\nid;montant;libellé\n1;1,00;CAF\xc9\n2;1,00;OK\n", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingUTF8, res.stats.Encoding)
	assert.Equal(t, []string{`4 2 1.00 "OK"`}, summaries(res.records))
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonInvalidEncoding, res.rejected[0].Reason)

	res = readString(t, "id;montant;libell\xe9\n1;1,00;CAF\xc9\n", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
	assert.Equal(t, []string{`2 1 1.00 "CAFÉ"`}, summaries(res.records))
}

func TestTextCodecDecision(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"plain ascii", ""},
		{"caf\xc3\xa9", EncodingUTF8},
		{"caf\xe9", EncodingWindows1252},
		{"caf\xc3", EncodingWindows1252}, // cut sequence
		{"\xef\xbf\xbd", EncodingUTF8},   // U+FFFD itself is valid UTF-8
		{"x\xe2\x82\xac y\xe9", EncodingUTF8},
	}
	for _, tt := range tests {
		var c textCodec
		c.check([]byte(tt.in))
		assert.Equal(t, tt.want, c.enc, "%q", tt.in)
	}
}
