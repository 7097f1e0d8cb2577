package txn

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadAccountColumn(t *testing.T) {
	for _, name := range []string{"account", "Compte", " IBAN ", "ACCOUNT"} {
		t.Run(name, func(t *testing.T) {
			in := "id;montant;" + name + ";libellé\n" +
				"1;12,50; FR7630006000011234567890189 ;CB TAXI\n" +
				"1;12,50;acme-main;CB TAXI\n" +
				"2;-3,00;Acme-Main;PRLV TOTO\n"
			res := readString(t, in, ReaderOptions{})
			require.NoError(t, res.err)
			assert.Empty(t, res.rejected)
			assert.True(t, res.stats.AccountColumn)
			require.Len(t, res.records, 3)
			assert.Equal(t, "FR7630006000011234567890189", res.records[0].Account) // trimmed
			assert.Equal(t, "acme-main", res.records[1].Account)
			assert.Equal(t, "Acme-Main", res.records[2].Account) // case kept
			assert.Equal(t, []string{`2 1 12.50 "CB TAXI"`, `3 1 12.50 "CB TAXI"`, `4 2 -3.00 "PRLV TOTO"`}, summaries(res.records))
		})
	}
}

func TestReadWithoutAccountColumn(t *testing.T) {
	res := readString(t, "id,amount,wording\n1,1.00,A\n", ReaderOptions{})
	require.NoError(t, res.err)
	assert.False(t, res.stats.AccountColumn)
	require.Len(t, res.records, 1)
	assert.Empty(t, res.records[0].Account)

	res = readString(t, "id,amount,wording\n1,1.00,A\nx,bad,B\n", ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.rejected, 1)
	assert.Empty(t, res.rejected[0].Account)
}

func TestReadInvalidAccount(t *testing.T) {
	in := "id,amount,wording,account\n" +
		"1,1.00,A,acme\n" +
		"2,2.00,B,\n" + // empty
		"3,3.00,C,acme/main\n" + // bad character
		"4,4.00,D,FR76 3000\n" + // space inside
		",5.00,E,acme\n" + // missing id takes precedence
		"6,x,F,bad/one\n" + // invalid amount takes precedence
		"7,7.00,G,a:b.c_d-e\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	accepted, rejected := res.lines()
	assert.Equal(t, []int64{2, 8}, accepted)
	assert.Equal(t, []int64{3, 4, 5, 6, 7}, rejected)
	reasons := make([]Reason, len(res.rejected))
	for i, r := range res.rejected {
		reasons[i] = r.Reason
	}
	assert.Equal(t, []Reason{ReasonInvalidAccount, ReasonInvalidAccount, ReasonInvalidAccount, ReasonMissingID, ReasonInvalidAmount}, reasons)
	assert.Equal(t, "", res.rejected[0].Account)
	assert.Contains(t, res.rejected[0].Detail, "account is empty")
	assert.Equal(t, "acme/main", res.rejected[1].Account) // raw as read
	assert.Contains(t, res.rejected[1].Detail, `'/'`)
	assert.Equal(t, "FR76 3000", res.rejected[2].Account)
	assert.Equal(t, "acme", res.rejected[3].Account)
	assert.Equal(t, "a:b.c_d-e", res.records[1].Account)
}

func TestReadMalformedRowKeepsRawAccount(t *testing.T) {
	in := "id;amount;wording;compte\n" +
		"1;1.00;A;acme;extra;more\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonMalformedRow, res.rejected[0].Reason)
	assert.Equal(t, "acme", res.rejected[0].Account)
}

func TestReadTwoAccountColumnsIsNoHeader(t *testing.T) {
	res := readString(t, "id,amount,wording,compte,iban\n1,1.00,A,x,y\n", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)
}
