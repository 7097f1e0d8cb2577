package devstack

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TableKey is a table of txflow's store and the key its rows must be unique on, whatever
// constraints the schema declares: the chaos script and the end-to-end tests check them after
// killing things.
type TableKey struct{ Table, Key string }

// TableKeys lists every table with its key.
var TableKeys = []TableKey{
	{"transactions", "account, id"},
	{"run_lines", "run_id, seq"},
	{"run_lines", "run_id, line"},
	{"rejected_rows", "run_id, line"},
	{"transactions", "key"},
	{"tags", "txn_key"},
	{"annotations", "txn_key"},
}

// KeyCount is what CountKeys found in one table: its rows and its distinct keys.
type KeyCount struct {
	TableKey
	Rows, Distinct int64
}

// CountKeys counts the rows and distinct keys of every table of TableKeys.
func CountKeys(ctx context.Context, conn *pgx.Conn) ([]KeyCount, error) {
	out := make([]KeyCount, 0, len(TableKeys))
	for _, tk := range TableKeys {
		c := KeyCount{TableKey: tk}
		q := fmt.Sprintf("SELECT count(*), count(DISTINCT (%s)) FROM %s", tk.Key, pgx.Identifier{tk.Table}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&c.Rows, &c.Distinct); err != nil {
			return nil, fmt.Errorf("count keys of %s: %w", tk.Table, err)
		}
		out = append(out, c)
	}
	return out, nil
}
