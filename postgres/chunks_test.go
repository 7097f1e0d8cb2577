package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/txn"
)

// TestChunkLinesCountedFromTheBounds checks the lines a chunk counts, for ranges inside, across and
// past the run's lines, in a run whose every line stored its transaction (every seq from 1 to the
// last one: counted from the bounds) and in runs with a hole (a duplicate moved out, a line whose
// transaction was stored before: counted in the table).
func TestChunkLinesCountedFromTheBounds(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()

	records := func(ids ...string) []txn.Record {
		var recs []txn.Record
		for i, id := range ids {
			recs = append(recs, rec(int64(i+2), id, "1.00", "w "+id))
		}
		return recs
	}
	ranges := [][2]int64{{1, 4}, {4, 100}, {0, 2}, {3, 4}, {5, 7}, {7, 10}, {-5, 0}, {1, 7}}
	// lines in each range, by run
	cases := []struct {
		run     string
		ids     []string
		allNew  bool
		lines   []int64
		bounded bool // counted from the bounds
	}{
		{run: "dense", ids: []string{"a", "b", "c", "d", "e", "f"}, allNew: true,
			lines: []int64{3, 3, 1, 1, 2, 0, 0, 6}, bounded: true},
		// seq 3 repeats a's id: moved to rejected_rows, every other line new.
		{run: "hole", ids: []string{"g", "h", "g", "i", "j", "k"}, allNew: true,
			lines: []int64{2, 3, 1, 0, 2, 0, 0, 5}},
		// seq 2's transaction (a) was stored by "dense": every line is there, not all new.
		{run: "stored", ids: []string{"l", "a", "m", "n", "o", "p"}, allNew: false,
			lines: []int64{3, 3, 1, 1, 2, 0, 0, 6}},
	}
	for _, c := range cases {
		ingest(t, db, c.run, records(c.ids...), nil)
		require.Equal(t, c.allNew, queryValue[bool](t, dbURL, "SELECT all_new FROM runs WHERE run_id = $1", c.run), c.run)
		require.Equal(t, c.bounded, queryValue[bool](t, dbURL,
			"SELECT new_count = next_seq - 1 FROM runs WHERE run_id = $1", c.run), c.run)
		for i, r := range ranges {
			want := queryValue[int64](t, dbURL,
				"SELECT count(*) FROM run_lines WHERE run_id = $1 AND seq >= $2 AND seq < $3", c.run, r[0], r[1])
			require.Equal(t, c.lines[i], want, "%s [%d,%d): the case's own count", c.run, r[0], r[1])

			tags, err := db.TagChunk(ctx, c.run, r[0], r[1], tagWord)
			require.NoError(t, err)
			require.Equal(t, want, tags.Lines, "%s [%d,%d): tag chunk", c.run, r[0], r[1])
			anns, err := db.AnnotateChunk(ctx, c.run, r[0], r[1], annotate)
			require.NoError(t, err)
			require.Equal(t, want, anns.Lines, "%s [%d,%d): annotate chunk", c.run, r[0], r[1])
		}
		require.Zero(t, queryValue[int64](t, dbURL, `
			SELECT count(*) FROM run_lines rl
			WHERE rl.run_id = $1
			  AND (NOT EXISTS (SELECT 1 FROM tags g WHERE g.txn_key = rl.txn_key)
			       OR NOT EXISTS (SELECT 1 FROM annotations a WHERE a.txn_key = rl.txn_key))`, c.run),
			"%s: every line tagged and annotated", c.run)
	}
}
