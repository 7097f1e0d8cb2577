package postgres

import (
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// parseAmount reads numeric's text output: two decimals into cents directly, anything else
// through decimal.
func TestParseAmount(t *testing.T) {
	for _, s := range []string{"0.00", "12.50", "-12.50", "-0.01", "1000000.00", "9999999999999999.99",
		"-9999999999999999.99", "10000000000000000.00", "123456789012345678901234.56", "5", "5.1", "-5.125"} {
		got, err := parseAmount([]byte(s))
		require.NoError(t, err, s)
		require.True(t, decimal.RequireFromString(s).Equal(got), "%s: %s", s, got)
	}
	for _, s := range []string{"", "-", "1.2x", "12.a0", "NaN"} {
		_, err := parseAmount([]byte(s))
		require.Error(t, err, s)
	}
}

// Keys make one range while they are at most keyGap apart.
func TestKeyRanges(t *testing.T) {
	lo, hi := keyRanges([]int64{-5, -4, 1, 2, 3, 3 + keyGap, 4 + 2*keyGap, 1 << 33, 1<<33 + 1})
	require.Equal(t, []int64{-5, 4 + 2*keyGap, 1 << 33}, lo)
	require.Equal(t, []int64{3 + keyGap, 4 + 2*keyGap, 1<<33 + 1}, hi)
	lo, hi = keyRanges(nil)
	require.Empty(t, lo)
	require.Empty(t, hi)
}
