package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// BenchmarkReclassifyDryRun1M stores 1,000,000 tagged and annotated transactions (as
// BenchmarkIngest1M does; TXFLOW_BENCH_ROWS changes the count), makes a version of the rules
// with one more tag word, and times the plan and the dry run of a reclassification of all of
// them in chunks of about 100,000 (ranges of pages), four at once as the workflow runs them, and
// both together. Timings are reported as custom metrics (seconds).
//
//	go test ./postgres/ -run '^$' -bench ReclassifyDryRun1M -benchtime 1x
func BenchmarkReclassifyDryRun1M(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("TXFLOW_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err)
		rows = n
	}
	const batch, chunk, parallel = 100_000, 100_000, 4
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := postgres.Open(ctx, testdb.URL(b))
		require.NoError(b, err)
		require.NoError(b, db.Migrate(ctx))
		v1, err := db.CurrentRules(ctx, txn.DefaultRules())
		require.NoError(b, err)
		runID := fmt.Sprintf("bench-%d", i)
		mustBegin(b, db, postgres.Run{ID: runID, File: "bench.csv", SHA256: "-", RulesVersion: v1.Version})
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
					Wording:   fmt.Sprintf("CARD PAYMENT %d %s PARIS", seq%1000, []string{"TAXI", "UBER", "SHOP"}[seq%3]),
				})
			}
			require.NoError(b, db.LoadBatch(ctx, runID, int64(first), recs, nil))
		}
		c, err := db.FinishIngest(ctx, runID, 0)
		require.NoError(b, err)
		for from := int64(1); from <= c.MaxSeq; from += batch {
			_, err := db.TagChunkVersion(ctx, runID, from, from+batch, v1.Version, v1.Rules.Tag)
			require.NoError(b, err)
			_, err = db.AnnotateChunkVersion(ctx, runID, from, from+batch, v1.Version, annotate)
			require.NoError(b, err)
		}
		v2 := v1.Rules
		v2.TagWords = append(v2.TagWords, "UBER")
		_, err = db.SetRules(ctx, v2, "UBER")
		require.NoError(b, err)
		b.StartTimer()

		start := time.Now()
		p, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "bench", RulesVersion: 2, ChunkRows: chunk})
		require.NoError(b, err)
		plan := time.Since(start)
		b.ReportMetric(plan.Seconds(), "plan_s")

		start = time.Now()
		var mu sync.Mutex
		var changed, items int64
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		for _, r := range p.Chunks() {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := db.DryRunReclassifyChunk(ctx, "bench", r, classifier(v2))
				require.NoError(b, err)
				mu.Lock()
				changed += c.Changed
				items += c.Items
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.ReportMetric(time.Since(start).Seconds(), "dryrun_s")
		b.ReportMetric((plan + time.Since(start)).Seconds(), "total_s")
		b.ReportMetric(float64(len(p.Chunks())), "chunks")
		require.EqualValues(b, rows, items)
		require.EqualValues(b, (rows+2)/3, changed, "the UBER wordings")
		b.StopTimer()
		db.Close()
	}
}
