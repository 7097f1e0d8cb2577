// Command bench measures txflow end to end: it generates a deterministic file of N rows, runs
// the full pipeline through real worker and starter processes against an in-process Temporal
// server and PostgreSQL, and compares the wall time with the floor measured in the same run on
// the same quiet database, before the pipeline and again after it: COPY of the same file into a
// table, and back out into a synced file (floor.go).
//
//	go run ./dev/bench -rows 1000000        (make bench ROWS=1000000)
//	go run ./dev/bench -inbox-files 200 -rows 1000   (make bench-inbox)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/gen"
	"github.com/txflow/txflow/workflows"
)

func main() {
	var o options
	flag.IntVar(&o.rows, "rows", 1_000_000, "data rows in the generated file (with -inbox-files, in each inbox file)")
	flag.IntVar(&o.workers, "workers", 1, "worker processes")
	flag.Int64Var(&o.chunk, "chunk-size", workflows.DefaultChunkSize, "lines per tag/annotate activity")
	flag.IntVar(&o.parallel, "max-parallel", workflows.DefaultMaxParallel, "chunk activities in flight per stage")
	flag.StringVar(&o.dir, "dir", "data/bench", "generated files, binaries and outputs go here")
	flag.StringVar(&o.state, "state-dir", ".txflow/bench", "the benchmark's PostgreSQL cluster lives here (when DATABASE_URL is unset)")
	flag.BoolVar(&o.delivery, "delivery", false, "deliver results to an embedded NATS server (TXFLOW_NATS_URL) and report the messages published")
	flag.BoolVar(&o.keepDB, "keep-db", false, "keep the run's database (by default it is dropped at the end: 10M rows take about 6 GB)")
	flag.BoolVar(&o.sqlAlone, "sql-alone", false, "after the pipeline, also measure what PostgreSQL alone takes to store what a run stores (sqlalone.go)")
	flag.IntVar(&o.inboxFiles, "inbox-files", 0, "when set, run this many files of -rows rows through the inbox against one file of them all (inbox.go)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mode := run
	if o.inboxFiles > 0 {
		mode = runInbox
	}
	if err := mode(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	rows, workers, parallel int
	inboxFiles              int
	chunk                   int64
	dir, state              string
	keepDB, delivery        bool
	sqlAlone                bool
}

func run(ctx context.Context, o options) error {
	input, output, bin := filepath.Join(o.dir, "input"), filepath.Join(o.dir, "output"), filepath.Join(o.dir, "bin")
	for _, d := range []string{input, output, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	name := fmt.Sprintf("bench-%d.csv", o.rows)
	file := filepath.Join(input, name)
	if _, err := os.Stat(file); err != nil {
		fmt.Printf("generating %s ...\n", file)
		if err := writeFile(file, func(f *os.File) error { return gen.Write(f, o.rows, 1) }); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	tiny := filepath.Join(input, "bench-10.csv")
	// Other ids than the big file's, so that it adds to the database without touching its run.
	if err := writeFile(tiny, func(f *os.File) error { return gen.WriteIDs(f, 10, 2, "S") }); err != nil {
		return err
	}
	// Another small file, run while the big one is being tagged and annotated.
	loaded := filepath.Join(input, "bench-10-under-load.csv")
	if err := writeFile(loaded, func(f *os.File) error { return gen.WriteIDs(f, 10, 3, "L") }); err != nil {
		return err
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}

	fmt.Println("building worker and starter ...")
	bins, err := devstack.Build(ctx, bin, "worker", "starter")
	if err != nil {
		return err
	}

	stack, err := devstack.Start(ctx, devstack.Options{
		StateDir: o.state, InMemory: true, UIPort: -1, DatabaseURL: os.Getenv("DATABASE_URL"),
		// A fresh store each time: a stream that kept an earlier run's message ids would drop
		// this run's messages as duplicates within its window.
		NATS: o.delivery,
	})
	if err != nil {
		return err
	}
	defer stack.Stop()
	dbURL, drop, err := benchDatabase(ctx, stack, o.keepDB)
	if err != nil {
		return err
	}
	defer drop() // deferred before the workers' stops, so it runs after them
	env := workerEnv(stack, input, output, dbURL)

	// The floor, on the same database while it is quiet: COPY the file in, COPY it out. It is
	// measured again after the pipeline, and the faster of the two counts.
	floorOut := filepath.Join(output, "floor.csv")
	floorBefore, err := measureFloor(ctx, dbURL, file, floorOut)
	if err != nil {
		return err
	}

	var workers []*devstack.Process
	for i := 0; i < o.workers; i++ {
		p, err := devstack.StartProcess(bins["worker"], devstack.Environ(env), os.Stderr)
		if err != nil {
			return err
		}
		defer p.Stop(40 * time.Second)
		workers = append(workers, p)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: stack.Temporal.FrontendHostPort()})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := devstack.WaitForPollers(ctx, c, stack.Temporal.Namespace(), workflows.TaskQueue, o.workers, time.Minute); err != nil {
		return err
	}

	starter := func(path string) (time.Duration, error) {
		began := time.Now()
		p, err := devstack.StartProcess(bins["starter"], devstack.Environ(env), nil, "run",
			"--chunk-size", fmt.Sprint(o.chunk), "--max-parallel", fmt.Sprint(o.parallel), filepath.Base(path))
		if err != nil {
			return 0, err
		}
		if err := p.Wait(); err != nil {
			return 0, fmt.Errorf("starter run %s: %w", filepath.Base(path), err)
		}
		return time.Since(began), nil
	}
	tinyTime, err := starter(tiny)
	if err != nil {
		return err
	}
	var streamBefore devstack.StreamCounts
	if o.delivery {
		// The tiny run's messages are in the stream already: only the big run's count.
		if streamBefore, err = devstack.CountStream(ctx, stack.NATS.URL(), devstack.DefaultStream); err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
	}
	fmt.Printf("running the pipeline on %d rows (%d worker(s)) ...\n", o.rows, o.workers)
	id, err := devstack.RunIDOf(file)
	if err != nil {
		return err
	}
	var pids []int
	for _, w := range workers {
		pids = append(pids, w.Pid())
	}
	probe := newCPUProbe(ctx, dbURL, pids)
	cpuBefore, cpuErr := probe.sample()
	type result struct {
		wall time.Duration
		err  error
	}
	big := make(chan result, 1)
	go func() {
		wall, err := starter(file)
		big <- result{wall, err}
	}()
	// A small file started while the big run's chunks fill the task queue (without delivery, whose
	// counts would include its messages).
	var loadedTime time.Duration
	loadedRan := false
	if !o.delivery {
		if loadedTime, loadedRan, err = underLoad(ctx, c, id, func() (time.Duration, error) { return starter(loaded) }); err != nil {
			return err
		}
	}
	res := <-big
	wall, err := res.wall, res.err
	if err != nil {
		return err
	}
	var cpu *cpuUse
	if cpuAfter, err := probe.sample(); err == nil && cpuErr == nil {
		selfName := "Temporal"
		if o.delivery {
			selfName = "Temporal, NATS"
		}
		u := cpuBefore.to(cpuAfter, selfName)
		cpu = &u
	}
	var peak int64
	for _, w := range workers {
		rss, err := w.PeakRSS()
		if err != nil {
			return err
		}
		peak = max(peak, rss)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return err
	}
	events := desc.GetWorkflowExecutionInfo().GetHistoryLength()

	fmt.Println("measuring the floor again ...")
	if err := settle(ctx, dbURL, 5*time.Second); err != nil {
		return err
	}
	floorAfter, err := measureFloor(ctx, dbURL, file, floorOut)
	if err != nil {
		return err
	}
	if err := os.Remove(floorOut); err != nil {
		return err
	}
	floorBest := min(floorBefore.total(), floorAfter.total())
	var alone sqlAlone
	if o.sqlAlone {
		fmt.Println("measuring SQL alone ...")
		if err := settle(ctx, dbURL, 5*time.Second); err != nil {
			return err
		}
		if alone, err = measureSQLAlone(ctx, dbURL, file, floorOut, o.rows); err != nil {
			return err
		}
		if err := os.Remove(floorOut); err != nil {
			return err
		}
	}

	fmt.Printf("\nrows                  %d (%.1f MB)\n", o.rows, float64(st.Size())/1e6)
	until := "start to outputs written"
	if o.delivery {
		until += " and every message acknowledged"
	}
	fmt.Printf("pipeline wall time    %s (%s)\n", wall.Round(time.Millisecond), until)
	fmt.Printf("rows/s                %.0f\n", float64(o.rows)/wall.Seconds())
	fmt.Printf("worker peak RSS       %.1f MB (largest of %d)\n", float64(peak)/1e6, o.workers)
	fmt.Printf("history length        %d events\n", events)
	if cpu != nil {
		fmt.Printf("CPU over the run      %s\n", cpu)
	}
	fmt.Printf("floor before the run  %s\n", floorBefore)
	fmt.Printf("floor after the run   %s (after a CHECKPOINT and a pause)\n", floorAfter)
	fmt.Printf("pipeline / floor      %.2f (the faster floor)\n", wall.Seconds()/floorBest.Seconds())
	if o.sqlAlone {
		fmt.Printf("SQL alone             %s\n", alone)
		fmt.Printf("SQL alone / floor     %.2f (the pipeline / SQL alone: %.2f)\n",
			alone.total().Seconds()/floorBest.Seconds(), wall.Seconds()/alone.total().Seconds())
	}
	fmt.Printf("10-row file           %s end to end\n", tinyTime.Round(time.Millisecond))
	switch {
	case o.delivery:
		fmt.Println("10-row file, loaded   not measured with -delivery")
	case !loadedRan:
		fmt.Println("10-row file, loaded   not measured: the run was not seen tagging (too small)")
	default:
		fmt.Printf("10-row file, loaded   %s end to end, started while the big run was tagged and annotated\n", loadedTime.Round(time.Millisecond))
		loadedID, err := devstack.RunIDOf(loaded)
		if err != nil {
			return err
		}
		loadedSpans, err := stageSpans(ctx, c, loadedID)
		if err != nil {
			return err
		}
		fmt.Println("  its stages (scheduled to completed):")
		printSpans(os.Stdout, loadedSpans)
	}
	spans, err := stageSpans(ctx, c, id)
	if err != nil {
		return err
	}
	if o.delivery {
		after, err := devstack.CountStream(ctx, stack.NATS.URL(), devstack.DefaultStream)
		if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		printDelivery(os.Stdout, streamBefore, after, wall, spans)
	}
	fmt.Println("stages (first scheduled to last completed):")
	printSpans(os.Stdout, spans)
	return printIngestPhases(ctx, os.Stdout, dbURL, id, spans)
}

// publishActivity is the activity type of the pipeline's Publish stage.
const publishActivity = "Publish"

// printDelivery reports what the run added to the stream: its messages, and how many a second
// over the Publish stage and over the whole run.
func printDelivery(w io.Writer, before, after devstack.StreamCounts, wall time.Duration, spans []stageSpan) {
	txns, notices := after.Transactions-before.Transactions, after.Notices-before.Notices
	fmt.Fprintf(w, "messages published    %d (%d transactions, %d run notice(s); stream %s holds %d)\n",
		txns+notices, txns, notices, devstack.DefaultStream, after.Messages)
	rate := fmt.Sprintf("%.0f over the wall time", float64(txns+notices)/wall.Seconds())
	for _, s := range spans {
		if d := s.last.Sub(s.first); s.name == publishActivity && d > 0 {
			rate = fmt.Sprintf("%.0f over the Publish stage (%s, %d activities), %s", float64(txns)/d.Seconds(), d.Round(time.Millisecond), s.count, rate)
		}
	}
	fmt.Fprintf(w, "messages/s            %s\n", rate)
}

func writeFile(path string, write func(*os.File) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// underLoad waits until the run id is tagging (its chunks in the task queue), then runs small and
// returns how long it took; false when the run ended (or did not start within a minute) before
// its Tag stage was seen running: a small file does not keep it busy long enough.
func underLoad(ctx context.Context, c client.Client, id string, small func() (time.Duration, error)) (time.Duration, bool, error) {
	began := time.Now()
	for {
		v, err := c.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
		if err != nil && time.Since(began) > time.Minute {
			return 0, false, nil
		}
		if err == nil {
			var s workflows.Summary
			if err := v.Get(&s); err != nil {
				return 0, false, fmt.Errorf("progress of %s: %w", id, err)
			}
			for _, st := range s.Stages {
				if st.Name == workflows.StageTag && st.Status == workflows.StatusRunning {
					d, err := small()
					return d, err == nil, err
				}
			}
			if s.FinishedAt != nil {
				return 0, false, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// benchDatabase creates a database of its own for the run on the stack's PostgreSQL cluster and
// returns its URL and what drops it (nothing with keep, or when the stack uses DATABASE_URL's
// server: the run then uses that database).
func benchDatabase(ctx context.Context, stack *devstack.Stack, keep bool) (string, func(), error) {
	if stack.Postgres == nil {
		return stack.DatabaseURL, func() {}, nil
	}
	dbName := fmt.Sprintf("bench_%d", time.Now().Unix())
	if err := stack.Postgres.CreateDatabase(ctx, dbName); err != nil {
		return "", nil, err
	}
	drop := func() {
		if err := stack.Postgres.DropDatabase(context.WithoutCancel(ctx), dbName); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	if keep {
		drop = func() {}
	}
	return stack.Postgres.URL(dbName), drop, nil
}

// workerEnv is the environment of the benchmark's workers: the stack's, the run's database, and
// warnings only in the log unless TXFLOW_LOG_LEVEL says otherwise.
func workerEnv(stack *devstack.Stack, input, output, dbURL string) config.Map {
	env := stack.Env(input, output)
	env["DATABASE_URL"] = dbURL
	env["TXFLOW_LOG_LEVEL"] = "warn"
	if os.Getenv("TXFLOW_LOG_LEVEL") != "" {
		env["TXFLOW_LOG_LEVEL"] = os.Getenv("TXFLOW_LOG_LEVEL")
	}
	return env
}
