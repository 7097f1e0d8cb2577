package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/txflow/txflow/internal/testdb"
)

// The CPU line reads PostgreSQL's processes and this one's from /proc: work done by each shows
// in its own share.
func TestCPUProbeSeesPostgresAndThisProcess(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.URL(t)
	probe := newCPUProbe(ctx, dbURL, []int{os.Getpid()})
	if probe.postmaster == 0 {
		t.Skip("PostgreSQL does not run on this machine")
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	before, err := probe.sample()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 8000000)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx) // its time now counts in the server process's reaped children
	for spin, began := 0, time.Now(); time.Since(began) < 500*time.Millisecond; spin++ {
	}
	time.Sleep(100 * time.Millisecond)
	after, err := probe.sample()
	if err != nil {
		t.Fatal(err)
	}
	u := before.to(after, "test")
	t.Logf("%s", u)
	if u.postgres < 300*time.Millisecond {
		t.Errorf("PostgreSQL used %s, want at least 300ms", u.postgres)
	}
	if u.self < 300*time.Millisecond || u.worker != u.self {
		t.Errorf("this process used %s (as a worker %s), want at least 300ms", u.self, u.worker)
	}
	if u.cores < 1 || u.wall <= 0 {
		t.Errorf("cores %d, wall %s", u.cores, u.wall)
	}
}
