package txn

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// safeCellCase is one row of testdata/safe_cell.json, the table shared with
// the test of the SQL function txflow_safe_cell.
type safeCellCase struct {
	In   string `json:"in"`
	Want string `json:"want"`
}

func TestSafeCell(t *testing.T) {
	data, err := os.ReadFile("testdata/safe_cell.json")
	require.NoError(t, err)
	var cases []safeCellCase
	require.NoError(t, json.Unmarshal(data, &cases))
	require.Greater(t, len(cases), 40)
	for _, tc := range cases {
		assert.Equal(t, tc.Want, SafeCell(tc.In), "input %q", tc.In)
	}
}
