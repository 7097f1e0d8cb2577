package postgres

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The bounds of the largest amounts keep the fewest outermost buckets of each sign that hold
// at least n lines, all of the sign's lines when it has fewer, none when it has none.
func TestLargestBounds(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name          string
		lines         map[int]int64 // signed bucket -> lines
		debit, credit *string
	}{
		{"no lines", nil, nil, nil},
		{"only zeros", map[int]int64{11: 5}, nil, nil},
		{"one debit, one credit", map[int]int64{7: 1, 15: 1}, str("0"), str("0.01")},
		{"outermost bucket enough", map[int]int64{3: 4, 7: 100, 15: 100, 20: 3}, str("-999999.99"), str("10000000")},
		{"two buckets needed", map[int]int64{6: 1, 7: 100, 15: 100, 16: 2}, str("-99.99"), str("100")},
		{"beyond a billion", map[int]int64{0: 3, 22: 3}, str("-999999999.99"), str("1000000000")},
		{"below one", map[int]int64{10: 2, 12: 2}, str("0"), str("0.01")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p linesPart
			for s, n := range tc.lines {
				p.signed[s] = n
			}
			debit, credit := p.largestBounds(3)
			require.Equal(t, tc.debit, debit, "debit bound")
			require.Equal(t, tc.credit, credit, "credit bound")
		})
	}
}
