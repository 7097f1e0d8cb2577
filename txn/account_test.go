package txn

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAccount(t *testing.T) {
	tests := []struct {
		in, want string
		err      string // substring of the error, "" when valid
	}{
		{in: "default", want: "default"},
		{in: "FR7630006000011234567890189", want: "FR7630006000011234567890189"},
		{in: "  acme-main  ", want: "acme-main"},
		{in: "\tacme.eur:2024_1\n", want: "acme.eur:2024_1"},
		{in: "A", want: "A"},
		{in: "Acme", want: "Acme"}, // case kept
		{in: strings.Repeat("x", 64), want: strings.Repeat("x", 64)},
		{in: "", err: "account is empty"},
		{in: "   ", err: "account is empty"},
		{in: strings.Repeat("x", 65), err: "65 characters long, at most 64"},
		{in: "FR76 3000 6000", err: `' '`},
		{in: "acme/main", err: `'/'`},
		{in: "compté", err: `'é'`},
		{in: "a,b", err: `','`},
		{in: "a\x00b", err: `'\x00'`},
		{in: "a;b", err: `';'`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAccount(tt.in)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseAccountIsCaseSensitive(t *testing.T) {
	a, err := ParseAccount("acme")
	require.NoError(t, err)
	b, err := ParseAccount("ACME")
	require.NoError(t, err)
	assert.NotEqual(t, a, b)
}

func TestDefaultAccountIsValid(t *testing.T) {
	got, err := ParseAccount(DefaultAccount)
	require.NoError(t, err)
	assert.Equal(t, DefaultAccount, got)
}
