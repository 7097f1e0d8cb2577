package gen

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteIsDeterministicAndShaped(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, Write(&a, 20000, 1))
	require.NoError(t, Write(&b, 20000, 1))
	require.Equal(t, a.Bytes(), b.Bytes())

	recs, err := csv.NewReader(&a).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"id", "amount", "wording"}, recs[0])
	recs = recs[1:]
	require.Len(t, recs, 20000)
	var zero, high, one, two int
	for _, r := range recs {
		if r[1] == "0.00" {
			zero++
		}
		if len(strings.TrimPrefix(r[1], "-")) > len("999999.99") {
			high++
		}
		n := 0
		for _, w := range []string{"TATA", "TOTO", "TUTU", "TAXI"} {
			if strings.Contains(r[2], w) {
				n++
			}
		}
		switch n {
		case 1:
			one++
		case 2:
			two++
		}
		require.GreaterOrEqual(t, len(r[2]), 20)
	}
	share := func(n int) float64 { return float64(n) / float64(len(recs)) }
	require.InDelta(t, 0.01, share(zero), 0.003)
	require.InDelta(t, 0.001, share(high), 0.001)
	require.InDelta(t, 0.40, share(one), 0.02)
	require.InDelta(t, 0.10, share(two), 0.01)
}
