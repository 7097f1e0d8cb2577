package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/gen"
	"github.com/txflow/txflow/workflows"
)

// inboxSchedule is the schedule the inbox mode creates, paused, and triggers once.
const inboxSchedule = "bench-inbox"

// inboxFile is one generated file of the inbox and the run the inbox gives it.
type inboxFile struct {
	account, path, runID string
}

// runInbox is the -inbox-files mode: it runs one file of files*rows rows with the starter, then
// files files of rows rows each through the inbox, each in the sub-folder of an account of its
// own and with ids of its own, started as a schedule starts it (starter schedule trigger), and
// compares the two wall times.
func runInbox(ctx context.Context, o options) error {
	n, rows := o.inboxFiles, o.rows
	input, output, bin := filepath.Join(o.dir, "input"), filepath.Join(o.dir, "output"), filepath.Join(o.dir, "bin")
	for _, d := range []string{input, output, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The same bytes as the normal mode's file of as many rows.
	single := filepath.Join(input, fmt.Sprintf("bench-%d.csv", n*rows))
	if _, err := os.Stat(single); err != nil {
		fmt.Printf("generating %s ...\n", single)
		if err := writeFile(single, func(f *os.File) error { return gen.Write(f, n*rows, 1) }); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	warmup := filepath.Join(input, "bench-10.csv")
	if err := writeFile(warmup, func(f *os.File) error { return gen.WriteIDs(f, 10, 2, "S") }); err != nil {
		return err
	}
	// A fresh inbox: the files an earlier run of this mode left, and those it filed, go.
	for _, d := range []string{workflows.DefaultInboxDir, activities.ArchiveDir, activities.FailedDir} {
		if err := os.RemoveAll(filepath.Join(input, d)); err != nil {
			return err
		}
	}
	fmt.Printf("generating %d inbox files of %d rows ...\n", n, rows)
	files := make([]inboxFile, n)
	for i := range files {
		// An account and ids of its own: no file's rows meet another's, nor the single file's.
		account := fmt.Sprintf("bench-%04d", i+1)
		dir := filepath.Join(input, workflows.DefaultInboxDir, account)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(dir, fmt.Sprintf("f%04d.csv", i+1))
		if err := writeFile(path, func(f *os.File) error {
			return gen.WriteIDs(f, rows, uint64(100+i), fmt.Sprintf("F%04d-", i+1))
		}); err != nil {
			return err
		}
		sum, err := activities.HashFile(path)
		if err != nil {
			return err
		}
		files[i] = inboxFile{account: account, path: path, runID: workflows.RunID(account, sum)}
	}

	fmt.Println("building worker and starter ...")
	bins, err := devstack.Build(ctx, bin, "worker", "starter")
	if err != nil {
		return err
	}
	stack, err := devstack.Start(ctx, devstack.Options{
		StateDir: o.state, InMemory: true, UIPort: -1, DatabaseURL: os.Getenv("DATABASE_URL"),
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

	for i := 0; i < o.workers; i++ {
		p, err := devstack.StartProcess(bins["worker"], devstack.Environ(env), os.Stderr)
		if err != nil {
			return err
		}
		defer p.Stop(40 * time.Second)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: stack.Temporal.FrontendHostPort()})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := devstack.WaitForPollers(ctx, c, stack.Temporal.Namespace(), workflows.TaskQueue, o.workers, time.Minute); err != nil {
		return err
	}

	// starter runs the starter with args and returns how long it took and what it printed.
	starter := func(args ...string) (time.Duration, string, error) {
		var out bytes.Buffer
		began := time.Now()
		p, err := devstack.StartProcess(bins["starter"], devstack.Environ(env), &out, args...)
		if err != nil {
			return 0, "", err
		}
		err = p.Wait()
		took := time.Since(began)
		if err != nil {
			return 0, out.String(), fmt.Errorf("starter %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return took, out.String(), nil
	}
	run := func(path string) (time.Duration, error) {
		took, _, err := starter("run", "--chunk-size", fmt.Sprint(o.chunk), "--max-parallel", fmt.Sprint(o.parallel), filepath.Base(path))
		return took, err
	}
	// The worker's first run (schema, connections, caches) is not measured.
	if _, err := run(warmup); err != nil {
		return err
	}

	fmt.Printf("running one file of %d rows with the starter (%d worker(s)) ...\n", n*rows, o.workers)
	singleTime, err := run(single)
	if err != nil {
		return err
	}

	fmt.Printf("running %d files of %d rows through the inbox (schedule %s, triggered) ...\n", n, rows, inboxSchedule)
	if _, _, err := starter("schedule", "create", inboxSchedule, "--cron", "0 6 * * *", "--paused",
		"--note", "benchmark: triggered once by hand"); err != nil {
		return err
	}
	began := time.Now()
	inboxTime, out, err := starter("schedule", "trigger", inboxSchedule)
	if err != nil {
		return err
	}
	inboxID := ""
	for _, line := range strings.Split(out, "\n") {
		if id, ok := strings.CutPrefix(line, "workflow id:"); ok {
			inboxID = strings.TrimSpace(id)
		}
	}
	if inboxID == "" {
		return fmt.Errorf("starter schedule trigger printed no workflow id:\n%s", out)
	}
	var res workflows.InboxResult
	if err := c.GetWorkflow(ctx, inboxID, "").Get(ctx, &res); err != nil {
		return fmt.Errorf("inbox run %s: %w", inboxID, err)
	}
	if res.Totals.Archived != n || res.Totals.Problems != 0 {
		return fmt.Errorf("inbox run %s: %d of %d files archived, %d not processed successfully: %s",
			inboxID, res.Totals.Archived, n, res.Totals.Problems, strings.Join(res.Totals.ProblemFiles, "; "))
	}

	// Each file's run, as Temporal recorded it.
	var lastClose time.Time
	var firstStart time.Time
	durations := make([]time.Duration, 0, n)
	var intervals [][2]time.Time
	for _, f := range files {
		d, err := c.DescribeWorkflowExecution(ctx, f.runID, "")
		if err != nil {
			return fmt.Errorf("run of %s: %w", f.path, err)
		}
		info := d.GetWorkflowExecutionInfo()
		if st := info.GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			return fmt.Errorf("run %s of %s: %s, not completed", f.runID, f.path, st)
		}
		start, end := info.GetStartTime().AsTime(), info.GetCloseTime().AsTime()
		durations = append(durations, end.Sub(start))
		intervals = append(intervals, [2]time.Time{start, end})
		if end.After(lastClose) {
			lastClose = end
		}
		if firstStart.IsZero() || start.Before(firstStart) {
			firstStart = start
		}
	}
	slices.Sort(durations)
	median := durations[len(durations)/2]
	var medianID string
	for i, iv := range intervals {
		if iv[1].Sub(iv[0]) == median {
			medianID = files[i].runID
		}
	}
	desc, err := c.DescribeWorkflowExecution(ctx, inboxID, "")
	if err != nil {
		return err
	}
	inboxInfo := desc.GetWorkflowExecutionInfo()

	ratio := inboxTime.Seconds() / singleTime.Seconds()
	fmt.Printf("\nfiles                 %d of %d rows (%d rows in all), each of its own account\n", n, rows, n*rows)
	fmt.Printf("single file           %s (starter run of one file of %d rows, start to outputs written)\n", singleTime.Round(time.Millisecond), n*rows)
	fmt.Printf("inbox                 %s (starter schedule trigger, start to the inbox run's result)\n", inboxTime.Round(time.Millisecond))
	fmt.Printf("  to the last run     %s (trigger to the last file's run closed)\n", lastClose.Sub(began).Round(time.Millisecond))
	fmt.Printf("  first run started   %s after the trigger\n", firstStart.Sub(began).Round(time.Millisecond))
	fmt.Printf("files/s               %.2f\n", float64(n)/inboxTime.Seconds())
	fmt.Printf("inbox / single        %.2f (target: at most 2)\n", ratio)
	fmt.Printf("file runs             min %s, median %s, max %s (each run's start to close)\n",
		durations[0].Round(time.Millisecond), median.Round(time.Millisecond), durations[len(durations)-1].Round(time.Millisecond))
	fmt.Printf("runs open at once     at most %d\n", maxOverlap(intervals))
	fmt.Printf("inbox history         %d events, %d run(s)\n", inboxInfo.GetHistoryLength(), res.Totals.Runs)
	spans, err := stageSpans(ctx, c, medianID)
	if err != nil {
		return err
	}
	fmt.Printf("stages of the median file's run (%s, scheduled to completed):\n", medianID)
	printSpans(os.Stdout, spans)
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.runID
	}
	waits, err := activityWaits(ctx, c, ids)
	if err != nil {
		return err
	}
	var total time.Duration
	for _, d := range durations {
		total += d
	}
	fmt.Printf("activities of the file runs, mean per run (of %s from start to close):\n", (total / time.Duration(n)).Round(time.Millisecond))
	printWaits(os.Stdout, waits, n)
	return nil
}

// activityWait is how long the activities of one type waited in the task queue (scheduled to
// started) and ran (started to completed), summed over runs. A local activity (a small run's
// stages after Ingest) is counted only: its history does not say when it started.
type activityWait struct {
	name        string
	queued, ran time.Duration
	count       int
	local       bool
}

// activityWaits reads the histories of the runs and sums, by activity type, how long their
// activities were queued and how long they ran; in the order of their first scheduling.
func activityWaits(ctx context.Context, c client.Client, ids []string) ([]*activityWait, error) {
	byName := map[string]*activityWait{}
	var out []*activityWait
	for _, id := range ids {
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		scheduled := map[int64]time.Time{}
		names := map[int64]string{}
		started := map[int64]time.Time{}
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, fmt.Errorf("history of %s: %w", id, err)
			}
			at := ev.GetEventTime().AsTime()
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_MARKER_RECORDED:
				la, ok, err := devtemporal.LocalActivityOf(ev)
				if err != nil {
					return nil, fmt.Errorf("history of %s: %w", id, err)
				}
				if ok {
					key := la.ActivityType + " (local)"
					if byName[key] == nil {
						byName[key] = &activityWait{name: la.ActivityType, local: true}
						out = append(out, byName[key])
					}
					byName[key].count++
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
				scheduled[ev.GetEventId()], names[ev.GetEventId()] = at, name
				if byName[name] == nil {
					byName[name] = &activityWait{name: name}
					out = append(out, byName[name])
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				sid := ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()
				started[sid] = at
				w := byName[names[sid]]
				w.queued += at.Sub(scheduled[sid])
				w.count++
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				sid := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
				byName[names[sid]].ran += at.Sub(started[sid])
			}
		}
	}
	return out, nil
}

// printWaits prints the mean wait and run of each activity type over n runs, and their sums.
func printWaits(w io.Writer, waits []*activityWait, n int) {
	var queued, ran time.Duration
	for _, a := range waits {
		if a.local {
			fmt.Fprintf(w, "  %-14s local, within the workflow's task  (%d local activities)\n", a.name, a.count)
			continue
		}
		fmt.Fprintf(w, "  %-14s queued %9s  ran %9s  (%d activities)\n", a.name,
			(a.queued / time.Duration(n)).Round(time.Millisecond), (a.ran / time.Duration(n)).Round(time.Millisecond), a.count)
		queued += a.queued
		ran += a.ran
	}
	fmt.Fprintf(w, "  %-14s queued %9s  ran %9s\n", "all", (queued / time.Duration(n)).Round(time.Millisecond), (ran / time.Duration(n)).Round(time.Millisecond))
}

// maxOverlap returns the most intervals open at one time.
func maxOverlap(intervals [][2]time.Time) int {
	type edge struct {
		at   time.Time
		open int
	}
	edges := make([]edge, 0, 2*len(intervals))
	for _, iv := range intervals {
		edges = append(edges, edge{iv[0], 1}, edge{iv[1], -1})
	}
	// Closes before opens at the same instant: a run that ends as the next starts is not overlap.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.open - b.open
	})
	open, most := 0, 0
	for _, e := range edges {
		open += e.open
		most = max(most, open)
	}
	return most
}
