package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// ingest runs BeginIngest, one LoadBatch and FinishIngest.
func ingest(t *testing.T, db *postgres.DB, runID string, recs []txn.Record, rejected []txn.Rejected) postgres.IngestCounts {
	t.Helper()
	ctx := context.Background()
	mustBegin(t, db, postgres.Run{ID: runID, File: runID + ".csv", SHA256: "00"})
	require.NoError(t, db.LoadBatch(ctx, runID, 1, recs, rejected))
	c, err := db.FinishIngest(ctx, runID, 0)
	require.NoError(t, err)
	return c
}

func tagWord(w string) string { return txn.DefaultRules().Tag(w) }

func annotate(a decimal.Decimal) string { return string(txn.DefaultRules().Annotate(a)) }

func TestFinishIngestDuplicatesConflictsAndIdempotence(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()

	tooHigh := rec(7, "C", "2000000.00", "TOTO big")
	tooHigh.Error = txn.ReasonAmountTooHigh
	run1 := []txn.Record{
		rec(2, "A", "10.00", "coffee TAXI"),
		rec(4, "B", "-3.00", "lunch"),
		rec(5, "A", "99.00", "second A"), // in-file duplicate: moved, first kept
		rec(6, "B", "-3.00", "lunch"),    // identical duplicate: moved too
		tooHigh,
	}
	rejected1 := []txn.Rejected{{Line: 3, ID: "", Amount: "1", Wording: "x", Reason: txn.ReasonMissingID, Detail: "empty id"}}

	c := ingest(t, db, "run1", run1, rejected1)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 3, Rejected: 3, Duplicates: 2, Conflicts: 0, Errors: 1, MaxSeq: 5}, c)
	require.Equal(t, "id already on line 2",
		queryValue[string](t, dbURL, "SELECT detail FROM rejected_rows WHERE run_id = 'run1' AND line = 5 AND reason = 'duplicate_id'"))
	require.Equal(t, "10.00",
		queryValue[string](t, dbURL, "SELECT amount::text FROM transactions WHERE id = 'A'"), "first occurrence is kept")
	require.Equal(t, "99.00",
		queryValue[string](t, dbURL, "SELECT amount FROM rejected_rows WHERE run_id = 'run1' AND line = 5"), "raw amount as read")

	// A second FinishIngest moves and inserts nothing.
	again, err := db.FinishIngest(ctx, "run1", 0)
	require.NoError(t, err)
	c.New = 0
	require.Equal(t, c, again)

	tags, err := db.TagChunk(ctx, "run1", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 3}, tags)
	anns, err := db.AnnotateChunk(ctx, "run1", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 2}, anns, "the line in error is not annotated")
	require.False(t, queryValue[bool](t, dbURL, "SELECT EXISTS (SELECT 1 FROM annotations a JOIN transactions t ON t.key = a.txn_key WHERE t.id = 'C')"))

	counts, err := db.RunCounts(ctx, "run1")
	require.NoError(t, err)
	require.Equal(t, postgres.RunCounts{Accepted: 3, Rejected: 3, Errors: 1, Tagged: 2, Annotated: 2}, counts)

	// Second run: A identical (not new, keeps its results), B with another
	// amount and C with another wording conflict, D is new.
	run2 := []txn.Record{
		rec(2, "A", "10.00", "coffee TAXI"),
		rec(3, "B", "-4.00", "lunch"),
		rec(4, "C", "2000000.00", "TOTO huge"),
		rec(5, "D", "1.00", "TUTU"),
	}
	c2 := ingest(t, db, "run2", run2, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, New: 1, Rejected: 2, Conflicts: 2, MaxSeq: 4}, c2)
	require.Equal(t, `id already stored with amount -3.00 and wording 'lunch'`,
		queryValue[string](t, dbURL, "SELECT detail FROM rejected_rows WHERE run_id = 'run2' AND id = 'B'"))
	require.Equal(t, `id already stored with amount 2000000.00 and wording 'TOTO big'`,
		queryValue[string](t, dbURL, "SELECT detail FROM rejected_rows WHERE run_id = 'run2' AND id = 'C'"))

	tags, err = db.TagChunk(ctx, "run2", 1, c2.MaxSeq+1, tagWord)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 2, Computed: 1}, tags, "only D is computed")
	require.Equal(t, "run1", queryValue[string](t, dbURL, "SELECT g.run_id FROM tags g JOIN transactions t ON t.key = g.txn_key WHERE t.id = 'A'"))
	counts, err = db.RunCounts(ctx, "run2")
	require.NoError(t, err)
	require.Equal(t, postgres.RunCounts{Accepted: 2, Rejected: 2, Tagged: 2, Annotated: 1}, counts, "A keeps the results computed by run1")

	// The same data again adds nothing.
	before := queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions")
	c3 := ingest(t, db, "run3", run1, rejected1)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 0, Rejected: 3, Duplicates: 2, Errors: 1, MaxSeq: 5}, c3)
	require.Equal(t, before, queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions"))
	tags, err = db.TagChunk(ctx, "run3", 1, 6, tagWord)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 0}, tags)
}

func TestBeginIngestRestartsRun(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	run := postgres.Run{ID: "r", File: "f.csv", SHA256: "ab"}
	recs := []txn.Record{rec(2, "A", "1.00", "a"), rec(3, "B", "2.00", "b")}
	rejected := []txn.Rejected{{Line: 4, ID: "Z", Amount: "x", Wording: "w", Reason: txn.ReasonInvalidAmount, Detail: "d"}}

	mustBegin(t, db, run)
	require.NoError(t, db.LoadBatch(ctx, "r", 1, recs, rejected))
	// The same lines twice are refused, and leave nothing behind.
	require.ErrorContains(t, db.LoadBatch(ctx, "r", 2, recs[1:], nil), "next seq is 3")

	// A retried ingest starts over.
	mustBegin(t, db, run)
	require.NoError(t, db.LoadBatch(ctx, "r", 1, recs[:1], nil))
	require.NoError(t, db.LoadBatch(ctx, "r", 2, recs[1:], rejected))
	c, err := db.FinishIngest(ctx, "r", 0)
	require.NoError(t, err)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, New: 2, Rejected: 1, MaxSeq: 2}, c)
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines"))
}

func TestLoadBatchStoresUnstorableTextReplaced(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	mustBegin(t, db, postgres.Run{ID: "r", File: "f", SHA256: "s"})
	require.NoError(t, db.LoadBatch(ctx, "r", 1, nil, []txn.Rejected{
		{Line: 2, ID: "a\x00b", Amount: "\xff1", Wording: "ok", Reason: txn.ReasonMalformedRow, Detail: "bad bytes"},
	}))
	require.Equal(t, "a\uFFFDb", queryValue[string](t, dbURL, "SELECT id FROM rejected_rows"))
	require.Equal(t, "\uFFFD1", queryValue[string](t, dbURL, "SELECT amount FROM rejected_rows"))
}

func TestChunksRespectBoundsAndWriteOnce(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	var recs []txn.Record
	for i := range 10 {
		recs = append(recs, rec(int64(i+2), string(rune('a'+i)), "1.00", "w"+string(rune('a'+i))))
	}
	// An earlier run stored "j": r is not all new, so its chunks look for existing results.
	ingest(t, db, "r0", recs[9:], nil)
	c := ingest(t, db, "r", recs, nil)
	require.Equal(t, int64(10), c.MaxSeq)
	require.EqualValues(t, 9, c.New)

	var seen []string
	tags, err := db.TagChunk(ctx, "r", 3, 6, func(w string) string { seen = append(seen, w); return "" })
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 3}, tags)
	require.ElementsMatch(t, []string{"wc", "wd", "we"}, seen)
	require.Equal(t, "c,d,e", queryValue[string](t, dbURL, "SELECT string_agg(t.id, ',' ORDER BY t.id) FROM tags g JOIN transactions t ON t.key = g.txn_key"))
	require.False(t, queryValue[bool](t, dbURL, "SELECT all_new FROM runs WHERE run_id = 'r'"))
	require.True(t, queryValue[bool](t, dbURL, "SELECT bool_and(tag IS NULL) FROM tags"), `"" is stored as NULL`)

	seen = nil
	tags, err = db.TagChunk(ctx, "r", 1, 11, func(w string) string { seen = append(seen, w); return "T" })
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 10, Computed: 7}, tags)
	require.Len(t, seen, 7, "already tagged lines are not recomputed")

	anns, err := db.AnnotateChunk(ctx, "r", 8, 100, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 3}, anns)
	anns, err = db.AnnotateChunk(ctx, "r", 8, 100, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 0}, anns)
	anns, err = db.AnnotateChunk(ctx, "r", 11, 20, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{}, anns)
}

// TestTagChunkConcurrentRunWroteFirst makes another run tag a shared id
// between the read and the write of a chunk: the write must fall back to
// skipping the ids already stored.
func TestTagChunkConcurrentRunWroteFirst(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	ingest(t, db, "r1", []txn.Record{rec(2, "X", "1.00", "TATA")}, nil)
	ingest(t, db, "r2", []txn.Record{rec(2, "X", "1.00", "TATA"), rec(3, "Y", "2.00", "TOTO")}, nil)

	interleaved := false
	tags, err := db.TagChunk(ctx, "r2", 1, 3, func(w string) string {
		if !interleaved {
			interleaved = true
			c, err := db.TagChunk(ctx, "r1", 1, 2, tagWord)
			require.NoError(t, err)
			require.Equal(t, postgres.ChunkCounts{Lines: 1, Computed: 1}, c)
		}
		return tagWord(w)
	})
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 2, Computed: 1}, tags)
	require.Equal(t, "r1", queryValue[string](t, dbURL, "SELECT g.run_id FROM tags g JOIN transactions t ON t.key = g.txn_key WHERE t.id = 'X'"))
	require.Equal(t, "TOTO", queryValue[string](t, dbURL, "SELECT g.tag FROM tags g JOIN transactions t ON t.key = g.txn_key WHERE t.id = 'Y'"))
}

func TestBeginIngestResumesAfterTheLastCommittedBatch(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	run := postgres.Run{ID: "res", File: "res.csv", SHA256: "abc"}

	cp, err := db.BeginIngest(ctx, run, true) // nothing to resume yet: a fresh start
	require.NoError(t, err)
	require.Equal(t, postgres.Checkpoint{NextSeq: 1}, cp)
	rej := txn.Rejected{Line: 3, ID: "x", Amount: "?", Wording: "w", Reason: txn.ReasonInvalidAmount}
	require.NoError(t, db.LoadBatch(ctx, "res", 1, []txn.Record{rec(2, "A", "1", "a")}, []txn.Rejected{rej}))
	require.NoError(t, db.LoadBatch(ctx, "res", 2, []txn.Record{rec(4, "B", "2", "b"), rec(5, "C", "3", "c")}, nil))
	// A batch that does not follow the last one is refused: nothing is loaded twice.
	require.Error(t, db.LoadBatch(ctx, "res", 2, []txn.Record{rec(4, "B", "2", "b")}, nil))

	// The worker died: the retry resumes where the committed batches stop.
	cp, err = db.BeginIngest(ctx, run, true)
	require.NoError(t, err)
	require.Equal(t, postgres.Checkpoint{Records: 4, NextSeq: 4}, cp)
	require.EqualValues(t, 3, queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE run_id = 'res'"))

	// Another file content under the same run id is never resumed.
	cp, err = db.BeginIngest(ctx, postgres.Run{ID: "res", File: "res.csv", SHA256: "other"}, true)
	require.NoError(t, err)
	require.Equal(t, postgres.Checkpoint{NextSeq: 1}, cp)
	require.EqualValues(t, 0, queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE run_id = 'res'"))

	// A run settled before its worker died reports the same totals again.
	_, err = db.BeginIngest(ctx, run, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "res", 1, []txn.Record{rec(2, "A", "1", "a"), rec(3, "N", "5", "n")}, []txn.Rejected{rej}))
	c, err := db.FinishIngest(ctx, "res", 3)
	require.NoError(t, err)
	cp, err = db.BeginIngest(ctx, run, true)
	require.NoError(t, err)
	require.True(t, cp.Settled)
	require.EqualValues(t, 3, cp.RowsRead)
	require.Equal(t, c, cp.Totals)
	require.EqualValues(t, 2, cp.Totals.New)
}

// TestBeginIngestResumesOnlyItsOwnExecution: an ingestion is resumed by the workflow execution
// that began it (a retried workflow task runs a local Ingest again from attempt 1), never by a
// later execution of the same run id, which starts over; one begun without an execution
// (before they were recorded) is resumed as before.
func TestBeginIngestResumesOnlyItsOwnExecution(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	first := postgres.Run{ID: "ex", File: "ex.csv", SHA256: "abc", Execution: "exec-1"}
	lines := func() int64 {
		return queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE run_id = 'ex'")
	}

	_, err := db.BeginIngest(ctx, first, true)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "ex", 1, []txn.Record{rec(2, "A", "1", "a"), rec(3, "B", "2", "b")}, nil))
	require.Equal(t, "exec-1", queryValue[string](t, dbURL, "SELECT execution FROM runs WHERE run_id = 'ex'"))

	cp, err := db.BeginIngest(ctx, first, true)
	require.NoError(t, err)
	require.Equal(t, postgres.Checkpoint{Records: 2, NextSeq: 3}, cp, "the same execution resumes")
	require.EqualValues(t, 2, lines())

	second := first
	second.Execution = "exec-2"
	cp, err = db.BeginIngest(ctx, second, true)
	require.NoError(t, err)
	require.Equal(t, postgres.Checkpoint{NextSeq: 1}, cp, "another execution starts over")
	require.EqualValues(t, 0, lines())
	require.Equal(t, "exec-2", queryValue[string](t, dbURL, "SELECT execution FROM runs WHERE run_id = 'ex'"))

	// Settled by the second execution: only it gets the stored totals back.
	require.NoError(t, db.LoadBatch(ctx, "ex", 1, []txn.Record{rec(2, "A", "1", "a")}, nil))
	c, err := db.FinishIngest(ctx, "ex", 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, c.New)
	cp, err = db.BeginIngest(ctx, second, true)
	require.NoError(t, err)
	require.True(t, cp.Settled)
	require.Equal(t, c, cp.Totals)
	cp, err = db.BeginIngest(ctx, first, true)
	require.NoError(t, err)
	require.False(t, cp.Settled, "a settlement of another execution is not resumed")

	// An ingestion begun before executions were recorded is resumed by whoever retries it.
	legacy := postgres.Run{ID: "ex", File: "ex.csv", SHA256: "abc"}
	_, err = db.BeginIngest(ctx, legacy, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "ex", 1, []txn.Record{rec(2, "A", "1", "a")}, nil))
	cp, err = db.BeginIngest(ctx, first, true)
	require.NoError(t, err)
	require.Equal(t, postgres.Checkpoint{Records: 1, NextSeq: 2}, cp)
}

// TestChunksOfAnAllNewRun: a run whose transactions are all its own skips the search for
// existing results; a chunk run again (a retry) still writes each result once and keeps the
// first.
func TestChunksOfAnAllNewRun(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	var recs []txn.Record
	for i := range 10 {
		recs = append(recs, rec(int64(i+2), string(rune('a'+i)), "1.00", "w"+string(rune('a'+i))))
	}
	ingest(t, db, "fresh", recs, nil)
	require.True(t, queryValue[bool](t, dbURL, "SELECT all_new FROM runs WHERE run_id = 'fresh'"))

	tags, err := db.TagChunk(ctx, "fresh", 3, 6, func(string) string { return "FIRST" })
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 3}, tags)
	tags, err = db.TagChunk(ctx, "fresh", 1, 11, func(string) string { return "SECOND" })
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 10, Computed: 7}, tags)
	require.EqualValues(t, 10, queryValue[int64](t, dbURL, "SELECT count(*) FROM tags"))
	require.EqualValues(t, 3, queryValue[int64](t, dbURL, "SELECT count(*) FROM tags WHERE tag = 'FIRST'"))
}

func TestFinishIngestComparesIdsAndWordingsInNFC(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	const (
		idNFC      = "caf\u00e9-1"  // é composed (U+00E9)
		idNFD      = "cafe\u0301-1" // e + combining acute (U+0301)
		wordingNFC = "Caf\u00e9 cr\u00e8me TAXI"
		wordingNFD = "Cafe\u0301 cre\u0300me TAXI"
	)

	// The same id in both forms within a file: the second is a duplicate.
	c := ingest(t, db, "nfc1", []txn.Record{
		rec(2, idNFC, "4.50", wordingNFC),
		rec(3, idNFD, "4.50", wordingNFC),
		rec(4, "W1", "7.00", wordingNFD),
		rec(5, "W2", "8.00", wordingNFD),
		rec(6, "ide\u0301", "9.00", "TOTO"),
	}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 4, New: 4, Rejected: 1, Duplicates: 1, MaxSeq: 5}, c)
	require.Equal(t, "duplicate_id", queryValue[string](t, dbURL, "SELECT reason FROM rejected_rows WHERE run_id = 'nfc1' AND line = 3"))
	require.Equal(t, idNFD, queryValue[string](t, dbURL, "SELECT id FROM rejected_rows WHERE run_id = 'nfc1' AND line = 3"), "stored as read")
	// Stored as read, keyed in NFC.
	require.Equal(t, wordingNFD, queryValue[string](t, dbURL, "SELECT wording FROM transactions WHERE id = 'W1'"))
	require.Equal(t, "id\u00e9", queryValue[string](t, dbURL, "SELECT id FROM run_lines WHERE run_id = 'nfc1' AND line = 6"), "keyed in NFC")
	require.Equal(t, "ide\u0301", queryValue[string](t, dbURL, "SELECT id_as_read FROM run_lines WHERE run_id = 'nfc1' AND line = 6"))
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE run_id = 'nfc1' AND id_as_read IS NULL"))
	require.Equal(t, "ide\u0301", queryValue[string](t, dbURL, "SELECT id_as_read FROM transactions WHERE id = 'id\u00e9'"))
	_, err := db.TagChunk(ctx, "nfc1", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunk(ctx, "nfc1", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)

	// Another run: the stored NFD wording typed in NFC and the ids in the
	// other form are the same transactions (not new, not conflicts, keeping
	// their results); a genuinely different wording is still a conflict.
	c2 := ingest(t, db, "nfc2", []txn.Record{
		rec(2, "W1", "7.00", wordingNFC),
		rec(3, idNFD, "4.50", wordingNFD),
		rec(4, "id\u00e9", "9.00", "TOTO"),
		rec(5, "W2", "8.00", "Cafe creme TAXI"),
		rec(6, "W3", "1.00", "new"),
	}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 4, New: 1, Rejected: 1, Conflicts: 1, MaxSeq: 5}, c2)
	require.Equal(t, "W2", queryValue[string](t, dbURL, "SELECT id FROM rejected_rows WHERE run_id = 'nfc2' AND reason = 'id_conflict'"))
	require.Equal(t, int64(5), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions"))

	tags, err := db.TagChunk(ctx, "nfc2", 1, c2.MaxSeq+1, tagWord)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 4, Computed: 1}, tags, "only W3 is computed")
	anns, err := db.AnnotateChunk(ctx, "nfc2", 1, c2.MaxSeq+1, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 4, Computed: 1}, anns, "only W3 is computed")
	require.Equal(t, int64(5), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags"))

	var out bytes.Buffer
	_, err = db.WriteOutput(ctx, "nfc2", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"W1,7.00,"+wordingNFC+",TAXI,SALE,\n"+
		idNFD+",4.50,"+wordingNFD+",TAXI,SALE,\n"+
		"id\u00e9,9.00,TOTO,TOTO,SALE,\n"+
		"W3,1.00,new,,SALE,\n", out.String(), "ids and wordings exported as read, with the stored results")
	counts, err := db.RunCounts(ctx, "nfc2")
	require.NoError(t, err)
	require.Equal(t, postgres.RunCounts{Accepted: 4, Rejected: 1, Tagged: 3, Annotated: 4}, counts)
}

// TestSettlementCountsFromTheLoader checks the settlement of a run whose every line stores a new
// transaction: it looks for no conflict, and it takes its counts from what the loader says
// (FileFacts.Loaded and ErrorLines) instead of counting the run's lines. In each case the counts
// are PostgreSQL's own (a second settlement counts the lines, and must agree), and the loader's
// are taken exactly when every line is new and the loader loaded them all: it is told 10 errors
// too many, to show which counts the settlement gave.
func TestSettlementCountsFromTheLoader(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	tooHigh := func(r txn.Record) txn.Record { r.Error = txn.ReasonAmountTooHigh; return r }
	ingest(t, db, "stored", []txn.Record{rec(2, "S1", "10.00", "kept"), rec(3, "S2", "20.00", "kept")}, nil)

	cases := []struct {
		name    string
		lines   []txn.Record // ids but S1 and S2 are made the case's own
		loaded  bool
		want    postgres.IngestCounts
		trusted bool
	}{
		{name: "every line new", loaded: true, trusted: true,
			lines: []txn.Record{rec(2, "N1", "1.00", "x"), tooHigh(rec(3, "N2", "2000000.00", "x")), rec(4, "N3", "-1.00", "x")},
			want:  postgres.IngestCounts{Accepted: 3, New: 3, Errors: 1, MaxSeq: 3}},
		{name: "every line new, some loaded by an earlier attempt",
			lines: []txn.Record{rec(2, "N1", "1.00", "x"), tooHigh(rec(3, "N2", "2000000.00", "x")), rec(4, "N3", "-1.00", "x")},
			want:  postgres.IngestCounts{Accepted: 3, New: 3, Errors: 1, MaxSeq: 3}},
		{name: "a line of a stored transaction", loaded: true,
			lines: []txn.Record{rec(2, "N1", "1.00", "x"), rec(3, "S1", "10.00", "kept"), tooHigh(rec(4, "N2", "2000000.00", "x"))},
			want:  postgres.IngestCounts{Accepted: 3, New: 2, Errors: 1, MaxSeq: 3}},
		{name: "a line in conflict", loaded: true,
			lines: []txn.Record{rec(2, "N1", "1.00", "x"), tooHigh(rec(3, "S2", "2000000.00", "kept"))},
			want:  postgres.IngestCounts{Accepted: 1, New: 1, Rejected: 1, Conflicts: 1, MaxSeq: 1}},
		{name: "an id twice", loaded: true,
			lines: []txn.Record{rec(2, "N1", "1.00", "x"), rec(3, "N2", "1.00", "x"), tooHigh(rec(4, "N1", "2000000.00", "x"))},
			want:  postgres.IngestCounts{Accepted: 2, New: 2, Rejected: 1, Duplicates: 1, MaxSeq: 2}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runID := fmt.Sprintf("counts%d", i)
			var errorLines int64
			for j := range c.lines {
				if id := c.lines[j].ID; id != "S1" && id != "S2" {
					c.lines[j].ID = runID + "-" + id
				}
				if c.lines[j].Error != "" {
					errorLines++
				}
			}
			mustBegin(t, db, postgres.Run{ID: runID, File: runID + ".csv", SHA256: "00"})
			require.NoError(t, db.LoadBatch(ctx, runID, 1, c.lines, nil))
			got, err := db.FinishIngestFile(ctx, runID, postgres.FileFacts{RowsRead: int64(len(c.lines)), Loaded: c.loaded, ErrorLines: errorLines + 10})
			require.NoError(t, err)
			counted, err := db.FinishIngestFile(ctx, runID, postgres.FileFacts{RowsRead: int64(len(c.lines))})
			require.NoError(t, err)

			want := c.want
			if c.trusted {
				want.Errors += 10
			}
			require.Equal(t, want, got, "the first settlement")
			c.want.New = 0
			require.Equal(t, c.want, counted, "PostgreSQL's counts")
		})
	}
	require.Equal(t, "20.00", queryValue[string](t, dbURL, "SELECT amount::text FROM transactions WHERE id = 'S2'"), "the conflict stored nothing")
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE id IN ('S1', 'S2')"))
}
