package postgres_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// BenchmarkIngest1M runs a whole run through the store: load in batches,
// finish, tag and annotate in chunks, write both files. The row count is
// 1,000,000 unless TXFLOW_BENCH_ROWS says otherwise. Phase timings are
// reported as custom metrics (seconds).
//
//	go test ./postgres/ -run '^$' -bench Ingest1M -benchtime 1x
func BenchmarkIngest1M(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("TXFLOW_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err)
		rows = n
	}
	const batch = 100_000
	rules := txn.DefaultRules()
	ctx := context.Background()

	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := postgres.Open(ctx, testdb.URL(b))
		require.NoError(b, err)
		require.NoError(b, db.Migrate(ctx))
		runID := fmt.Sprintf("bench-%d", i)
		b.StartTimer()

		start := time.Now()
		phase := func(name string) {
			b.ReportMetric(time.Since(start).Seconds(), name+"_s")
			start = time.Now()
		}
		mustBegin(b, db, postgres.Run{ID: runID, File: "bench.csv", SHA256: "-"})
		recs := make([]txn.Record, 0, batch)
		for first := 1; first <= rows; first += batch {
			recs = recs[:0]
			for seq := first; seq < first+batch && seq <= rows; seq++ {
				cents := int64(seq*7919%200000) - 50000
				recs = append(recs, txn.Record{
					Line:      int64(seq + 1),
					ID:        fmt.Sprintf("TX%09d", seq),
					Amount:    decimal.New(cents, -2),
					RawAmount: decimal.New(cents, -2).StringFixed(2),
					Wording:   fmt.Sprintf("CARD PAYMENT %d TAXI PARIS", seq%1000),
				})
			}
			require.NoError(b, db.LoadBatch(ctx, runID, int64(first), recs, nil))
		}
		phase("load")
		c, err := db.FinishIngest(ctx, runID, 0)
		require.NoError(b, err)
		require.Equal(b, int64(rows), c.New)
		phase("finish")
		for from := int64(1); from <= c.MaxSeq; from += batch {
			_, err := db.TagChunk(ctx, runID, from, from+batch, rules.Tag)
			require.NoError(b, err)
		}
		phase("tag")
		for from := int64(1); from <= c.MaxSeq; from += batch {
			_, err := db.AnnotateChunk(ctx, runID, from, from+batch, func(a decimal.Decimal) string { return string(rules.Annotate(a)) })
			require.NoError(b, err)
		}
		phase("annotate")
		counts, err := db.WriteOutput(ctx, runID, postgres.OutputOptions{}, io.Discard)
		require.NoError(b, err)
		require.Equal(b, int64(rows), counts.Rows)
		phase("output")
		_, err = db.WriteErrorReport(ctx, runID, io.Discard)
		require.NoError(b, err)
		phase("report")
		b.StopTimer()
		db.Close()
	}
}
