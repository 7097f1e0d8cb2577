package txn

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadSkipsPreamble(t *testing.T) {
	in := "Compte n° 12345678901;;;\n" +
		"Période du 01/03/2024 au 31/03/2024;;;\n" +
		";;;\n" +
		"\n" +
		"   \n" +
		"id;montant;libellé;\n" +
		"1;12,50;CB TAXI;\n" +
		"\n" +
		"2;-3,00;PRLV TOTO;\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, []string{`7 1 12.50 "CB TAXI"`, `9 2 -3.00 "PRLV TOTO"`}, summaries(res.records))
	assert.Empty(t, res.rejected)
	assert.Equal(t, Stats{Records: 2, Accepted: 2, Delimiter: ';', Encoding: EncodingUTF8, HeaderLine: 6,
		Lines: 9, SkippedLines: 6, AcceptedLines: 2}, res.stats)
}

func TestReadHeaderWithin50Lines(t *testing.T) {
	preamble := func(n int) string { return strings.Repeat("Compte courant;12345\n", n) }
	res := readString(t, preamble(49)+"id,amount,wording\n1,1.00,X\n", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, int64(50), res.stats.HeaderLine)
	assert.Equal(t, int64(49), res.stats.SkippedLines)
	assert.Equal(t, []string{`51 1 1.00 "X"`}, summaries(res.records))

	res = readString(t, preamble(50)+"id,amount,wording\n1,1.00,X\n", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)
	assert.Equal(t, `"Compte courant;12345"`, fe.Found)

	res = readString(t, strings.Repeat("\n", 60)+"id,amount,wording\n1,1.00,X\n", ReaderOptions{})
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, "no header in the first 50 lines", fe.Found)
}

func TestReadTrailingDelimiter(t *testing.T) {
	tests := []struct{ name, in string }{
		{"header and rows", "id;montant;libellé;\n1;1,00;A;\n2;2,00;B;\n"},
		{"rows only", "id;montant;libellé\n1;1,00;A;\n2;2,00;B;\n"},
		{"header only", "id;montant;libellé;\n1;1,00;A\n2;2,00;B\n"},
		{"some rows", "id,amount,wording\n1,1.00,A,\n2,2.00,B\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readString(t, tt.in, ReaderOptions{})
			require.NoError(t, res.err)
			assert.Empty(t, res.rejected)
			assert.Equal(t, []string{`2 1 1.00 "A"`, `3 2 2.00 "B"`}, summaries(res.records))
		})
	}
}

func TestReadOneExtraEmptyField(t *testing.T) {
	in := "id,amount,wording,memo\n" +
		"1,1.00,A,m\n" + // exact
		"2,2.00,B,m,\n" + // one extra empty field: accepted
		"3,3.00,C,m, \n" + // blank counts as empty
		"4,4.00,D,m,x\n" + // extra field not empty
		"5,5.00,E,m,,\n" + // two extra fields
		"6,6.00,F\n" // one field missing (the header has no trailing delimiter)
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	accepted, rejected := res.lines()
	assert.Equal(t, []int64{2, 3, 4}, accepted)
	assert.Equal(t, []int64{5, 6, 7}, rejected)
	for i, n := range []int{5, 6, 3} {
		assert.Equal(t, ReasonMalformedRow, res.rejected[i].Reason)
		assert.Equal(t, fmt.Sprintf("expected 4 fields, found %d", n), res.rejected[i].Detail)
	}
}

func TestReadLargeAmountsAreNumbers(t *testing.T) {
	in := "id,amount,wording\n1,100000000000000000,X\n2,-99999999999999999.99,Y\n3," + strings.Repeat("9", 30) + ",Z\n"
	res := readString(t, in, ReaderOptions{MaxFieldBytes: 25})
	require.NoError(t, res.err)
	rules := DefaultRules()
	require.Len(t, res.records, 2)
	assert.Equal(t, "100000000000000000", res.records[0].Amount.String())
	assert.Equal(t, "-99999999999999999.99", res.records[1].Amount.String())
	for _, r := range res.records {
		assert.Equal(t, ReasonAmountTooHigh, rules.Check(r.Amount))
	}
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonFieldTooLong, res.rejected[0].Reason)
	assert.Equal(t, "amount is 30 bytes long, limit 25", res.rejected[0].Detail)
	assert.Equal(t, strings.Repeat("9", 30), res.rejected[0].Amount)
}
