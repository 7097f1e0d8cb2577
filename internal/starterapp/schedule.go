package starterapp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/workflows"
)

const scheduleUsage = `Usage: starter schedule COMMAND [flags] [NAME]

Schedules run the inbox (ProcessInbox on the "` + workflows.TaskQueue + `" task queue): every file waiting in
<input root>/<dir> is processed, then moved to archive/ or failed/.

Commands:
  create NAME --cron "0 6 * * *" [--timezone UTC] [--dir inbox] [--overlap skip] [--catchup-window 1h]
              [--paused] [--note TEXT]
                              the cron's times are in --timezone, an IANA name such as
                              Europe/Paris (default UTC); the inbox directory must exist
  list                        list the schedules
  describe NAME               print a schedule: spec, policies, next and recent runs
  pause NAME [--note TEXT]    stop taking scheduled actions
  unpause NAME [--note TEXT]  take them again
  trigger NAME [--overlap allow-all] [--no-wait]
                              run the inbox now: prints the inbox run's workflow id, waits for
                              it and prints what became of each file (exits 1 if it failed)
  backfill NAME --start TIME --end TIME [--overlap buffer-all]
                              take the actions the schedule would have taken between two times
                              (RFC 3339, e.g. 2026-01-02T06:00:00Z)
  delete NAME                 delete the schedule (runs already started go on)

Overlap policies (what happens when a run is due while the previous one is still running):
  skip        do not start it (default for create: an inbox run takes every waiting file anyway)
  buffer-one  start it when the running one ends; further ones are skipped
  buffer-all  start each in turn when the previous ones end (default for backfill: none is lost)
  cancel-other, terminate-other   stop the running one first
  allow-all   start it at once, alongside (default for trigger)
The catch-up window (default 1h) is how late a run missed while Temporal was unavailable may
still start; older ones are skipped.
`

// Defaults of the schedule commands.
const (
	DefaultScheduleOverlap = "skip"
	DefaultBackfillOverlap = "buffer-all"
	DefaultTriggerOverlap  = "allow-all"
	DefaultCatchupWindow   = time.Hour
	DefaultTimeZone        = "UTC"
)

var overlapPolicies = map[string]enumspb.ScheduleOverlapPolicy{
	"skip":            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	"buffer-one":      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	"buffer-all":      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	"cancel-other":    enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
	"terminate-other": enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER,
	"allow-all":       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
}

// ParseOverlap returns the overlap policy of a name (skip, buffer-one, buffer-all,
// cancel-other, terminate-other, allow-all).
func ParseOverlap(name string) (enumspb.ScheduleOverlapPolicy, error) {
	p, ok := overlapPolicies[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		names := make([]string, 0, len(overlapPolicies))
		for n := range overlapPolicies {
			names = append(names, n)
		}
		sort.Strings(names)
		return 0, fmt.Errorf("overlap policy %q: want one of %s", name, strings.Join(names, ", "))
	}
	return p, nil
}

func overlapName(p enumspb.ScheduleOverlapPolicy) string {
	for n, v := range overlapPolicies {
		if v == p {
			return n
		}
	}
	return strings.ToLower(strings.TrimPrefix(p.String(), "SCHEDULE_OVERLAP_POLICY_"))
}

// InboxWorkflowID is the workflow id prefix of the inbox runs a schedule starts; Temporal
// appends the scheduled time.
func InboxWorkflowID(schedule string) string { return "txflow-inbox-" + schedule }

func (s *starter) schedule(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprint(s.stderr, scheduleUsage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("starter schedule "+sub, flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.Usage = func() { fmt.Fprint(s.stderr, scheduleUsage) }
	var (
		cron, dir, overlap, note, start, end, tz string
		catchup                                  time.Duration
		paused, noWait                           bool
	)
	switch sub {
	case "create":
		fs.StringVar(&cron, "cron", "", "cron expression of the schedule, e.g. \"0 6 * * *\" (required)")
		fs.StringVar(&tz, "timezone", DefaultTimeZone, "IANA time zone `name` the cron's times are in, e.g. Europe/Paris")
		fs.StringVar(&dir, "dir", workflows.DefaultInboxDir, "inbox directory, relative to the input root")
		fs.StringVar(&overlap, "overlap", DefaultScheduleOverlap, "overlap policy")
		fs.DurationVar(&catchup, "catchup-window", DefaultCatchupWindow, "how late a missed run may still start")
		fs.BoolVar(&paused, "paused", false, "create the schedule paused")
		fs.StringVar(&note, "note", "", "note shown with the schedule")
	case "pause", "unpause":
		fs.StringVar(&note, "note", "", "why, shown with the schedule")
	case "trigger":
		fs.StringVar(&overlap, "overlap", DefaultTriggerOverlap, "overlap policy of this run")
		fs.BoolVar(&noWait, "no-wait", false, "print the inbox run's workflow id and exit, without waiting for it")
	case "backfill":
		fs.StringVar(&start, "start", "", "start of the backfill period, RFC 3339 (required)")
		fs.StringVar(&end, "end", "", "end of the backfill period, RFC 3339 (required)")
		fs.StringVar(&overlap, "overlap", DefaultBackfillOverlap, "overlap policy of the backfilled runs")
	case "list", "describe", "delete":
	default:
		fmt.Fprintf(s.stderr, "starter schedule: unknown command %q\n\n%s", sub, scheduleUsage)
		return ExitUsage
	}
	// The name may come before the flags: "create daily --cron ...".
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string{}, args[1:]...), args[0])
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	wantArgs := 1
	if sub == "list" {
		wantArgs = 0
	}
	if fs.NArg() != wantArgs {
		fmt.Fprintf(s.stderr, "starter schedule %s: want %d argument(s), got %d\n\n%s", sub, wantArgs, fs.NArg(), scheduleUsage)
		return ExitUsage
	}
	name := fs.Arg(0)
	var policy enumspb.ScheduleOverlapPolicy
	if overlap != "" {
		var err error
		if policy, err = ParseOverlap(overlap); err != nil {
			fmt.Fprintln(s.stderr, "starter:", err)
			return ExitUsage
		}
	}
	var from, to time.Time
	if sub == "backfill" {
		var err error
		if from, err = time.Parse(time.RFC3339, start); err != nil {
			fmt.Fprintf(s.stderr, "starter: --start %q: want an RFC 3339 time such as 2026-01-02T06:00:00Z\n", start)
			return ExitUsage
		}
		if to, err = time.Parse(time.RFC3339, end); err != nil {
			fmt.Fprintf(s.stderr, "starter: --end %q: want an RFC 3339 time such as 2026-01-02T06:00:00Z\n", end)
			return ExitUsage
		}
		if !to.After(from) {
			fmt.Fprintln(s.stderr, "starter: --end must be after --start")
			return ExitUsage
		}
	}
	if sub == "create" && strings.TrimSpace(cron) == "" {
		fmt.Fprintln(s.stderr, "starter schedule create: --cron is required")
		return ExitUsage
	}
	if sub == "create" {
		if err := CheckTimeZone(tz); err != nil {
			fmt.Fprintln(s.stderr, "starter schedule create:", err)
			return ExitUsage
		}
	}

	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitRunFailed
	}
	defer c.Close()
	sc := c.ScheduleClient()
	if err := func() error {
		switch sub {
		case "create":
			_, err := sc.Create(ctx, client.ScheduleOptions{
				ID:            name,
				Spec:          client.ScheduleSpec{CronExpressions: []string{cron}, TimeZoneName: tz},
				Overlap:       policy,
				CatchupWindow: catchup,
				Paused:        paused,
				Note:          note,
				Action: &client.ScheduleWorkflowAction{
					ID:            InboxWorkflowID(name),
					Workflow:      workflows.ProcessInbox,
					Args:          []any{workflows.ProcessInboxInput{Dir: dir}},
					TaskQueue:     workflows.TaskQueue,
					StaticSummary: fmt.Sprintf("Inbox %s/ (schedule %s)", dir, name),
				},
			})
			if err != nil {
				return fmt.Errorf("create schedule %s: %w", name, err)
			}
			fmt.Fprintf(s.stdout, "created schedule %s: cron %q in time zone %s, inbox %s/, overlap %s, catch-up window %s%s\n",
				name, cron, tz, dir, overlapName(policy), catchup, map[bool]string{true: ", paused"}[paused])
			return nil
		case "list":
			it, err := sc.List(ctx, client.ScheduleListOptions{})
			if err != nil {
				return fmt.Errorf("list schedules: %w", err)
			}
			n := 0
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return fmt.Errorf("list schedules: %w", err)
				}
				n++
				state := "active"
				if e.Paused {
					state = "paused"
				}
				next := "-"
				if len(e.NextActionTimes) > 0 {
					next = e.NextActionTimes[0].UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(s.stdout, "%-24s %-7s next %s  %s\n", e.ID, state, next, specText(e.Spec))
			}
			if n == 0 {
				fmt.Fprintln(s.stdout, "no schedules")
			}
			return nil
		}
		h := sc.GetHandle(ctx, name)
		switch sub {
		case "describe":
			d, err := h.Describe(ctx)
			if err != nil {
				return fmt.Errorf("describe schedule %s: %w", name, err)
			}
			printSchedule(s, name, d)
		case "pause":
			if err := h.Pause(ctx, client.SchedulePauseOptions{Note: note}); err != nil {
				return fmt.Errorf("pause schedule %s: %w", name, err)
			}
			fmt.Fprintf(s.stdout, "paused schedule %s\n", name)
		case "unpause":
			if err := h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note}); err != nil {
				return fmt.Errorf("unpause schedule %s: %w", name, err)
			}
			fmt.Fprintf(s.stdout, "unpaused schedule %s\n", name)
		case "trigger":
			return s.trigger(ctx, c, h, name, policy, noWait)
		case "backfill":
			err := h.Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{
				{Start: from, End: to, Overlap: policy},
			}})
			if err != nil {
				return fmt.Errorf("backfill schedule %s: %w", name, err)
			}
			fmt.Fprintf(s.stdout, "requested backfill of schedule %s from %s to %s (overlap %s): every action due in that period is taken\n",
				name, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), overlapName(policy))
		case "delete":
			if err := h.Delete(ctx); err != nil {
				return fmt.Errorf("delete schedule %s: %w", name, err)
			}
			fmt.Fprintf(s.stdout, "deleted schedule %s\n", name)
		}
		return nil
	}(); err != nil {
		if !errors.Is(err, errRunFailed) {
			fmt.Fprintln(s.stderr, "starter:", err)
		}
		return ExitRunFailed
	}
	return ExitOK
}

// errRunFailed is returned by a schedule command whose inbox run failed (exit 1, the reason
// printed already).
var errRunFailed = errors.New("inbox run failed")

// CheckTimeZone returns an error unless name is an IANA time zone name this machine knows
// (UTC included), as Temporal schedules take.
func CheckTimeZone(name string) error {
	if strings.TrimSpace(name) == "" || strings.EqualFold(name, "local") {
		return fmt.Errorf("--timezone %q: want an IANA time zone name such as UTC or Europe/Paris", name)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Errorf("--timezone %q: want an IANA time zone name such as UTC or Europe/Paris: %w", name, err)
	}
	return nil
}

// triggerWait bounds how long trigger looks for the run it started.
var triggerWait = 30 * time.Second

// trigger runs the schedule's action now, finds the inbox run it started among the schedule's
// recent actions, prints its workflow id and, unless noWait, waits for it and prints what became
// of each file.
func (s *starter) trigger(ctx context.Context, c client.Client, h client.ScheduleHandle, name string,
	policy enumspb.ScheduleOverlapPolicy, noWait bool) error {
	before, err := h.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe schedule %s: %w", name, err)
	}
	seen := map[string]bool{}
	for _, a := range before.Info.RecentActions {
		if a.StartWorkflowResult != nil {
			seen[a.StartWorkflowResult.WorkflowID] = true
		}
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: policy}); err != nil {
		return fmt.Errorf("trigger schedule %s: %w", name, err)
	}
	fmt.Fprintf(s.stdout, "triggered schedule %s (overlap %s)\n", name, overlapName(policy))
	var started *client.ScheduleWorkflowExecution
	deadline := time.Now().Add(triggerWait)
	for started == nil {
		d, err := h.Describe(ctx)
		if err != nil {
			return fmt.Errorf("describe schedule %s: %w", name, err)
		}
		for _, a := range d.Info.RecentActions {
			if r := a.StartWorkflowResult; r != nil && !seen[r.WorkflowID] {
				started = r
			}
		}
		if started != nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("schedule %s started no inbox run within %s (with overlap %s a run already open may have skipped it; see starter schedule describe %s)",
				name, triggerWait, overlapName(policy), name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(s.stdout, "workflow id: %s\nWeb UI:      %s\n", started.WorkflowID, s.cfg.WorkflowURL(started.WorkflowID))
	if noWait {
		return nil
	}
	var res workflows.InboxResult
	if err := c.GetWorkflow(ctx, started.WorkflowID, "").Get(ctx, &res); err != nil {
		fmt.Fprintf(s.stdout, "inbox run %s failed\n", started.WorkflowID)
		fmt.Fprintf(s.stderr, "starter: inbox run %s failed: %v\n", started.WorkflowID, err)
		return errRunFailed
	}
	PrintInboxResult(s.stdout, &res)
	return nil
}

// PrintInboxResult prints what an inbox run did with each file, for people.
func PrintInboxResult(w io.Writer, r *workflows.InboxResult) {
	fmt.Fprintf(w, "inbox %s/: %d archived, %d failed, %d left in the inbox\n", r.Dir, r.Totals.Archived, r.Totals.Failed, r.Totals.Left)
	if len(r.Files) == 0 && r.Totals.Archived+r.Totals.Failed+r.Totals.Left == 0 {
		fmt.Fprintln(w, "  no file was waiting")
	}
	for _, f := range r.Files {
		line := fmt.Sprintf("  %s: %s", f.File, f.Outcome)
		if f.MovedTo != "" && f.MovedTo != f.File {
			line += " → " + f.MovedTo
		}
		if f.RunID != "" {
			line += " (run " + f.RunID + ")"
		}
		if f.Error != "" {
			line += ": " + f.Error
		}
		fmt.Fprintln(w, line)
	}
}

func specText(spec *client.ScheduleSpec) string {
	if spec == nil {
		return ""
	}
	var parts []string
	parts = append(parts, spec.CronExpressions...)
	for _, c := range spec.Calendars {
		parts = append(parts, calendarText(c))
	}
	for _, iv := range spec.Intervals {
		parts = append(parts, "every "+iv.Every.String())
	}
	tz := spec.TimeZoneName
	if tz == "" {
		tz = DefaultTimeZone
	}
	return strings.Join(parts, "; ") + " (" + tz + ")"
}

// calendarText renders a calendar spec (the server stores cron expressions as calendars) in
// cron's field order: minute hour day-of-month month day-of-week.
func calendarText(c client.ScheduleCalendarSpec) string {
	rng := func(rs []client.ScheduleRange, lo, hi int) string {
		if len(rs) == 0 || (len(rs) == 1 && rs[0].Start == lo && rs[0].End == hi && rs[0].Step <= 1) {
			return "*"
		}
		var out []string
		for _, r := range rs {
			s := fmt.Sprint(r.Start)
			if r.End > r.Start {
				s += fmt.Sprintf("-%d", r.End)
			}
			if r.Step > 1 {
				s += fmt.Sprintf("/%d", r.Step)
			}
			out = append(out, s)
		}
		return strings.Join(out, ",")
	}
	return strings.Join([]string{rng(c.Minute, 0, 59), rng(c.Hour, 0, 23), rng(c.DayOfMonth, 1, 31), rng(c.Month, 1, 12), rng(c.DayOfWeek, 0, 6)}, " ")
}

func printSchedule(s *starter, name string, d *client.ScheduleDescription) {
	sch := d.Schedule
	state := "active"
	if sch.State != nil && sch.State.Paused {
		state = "paused"
	}
	fmt.Fprintf(s.stdout, "schedule %s: %s\n", name, state)
	if sch.State != nil && sch.State.Note != "" {
		fmt.Fprintf(s.stdout, "  note:           %s\n", sch.State.Note)
	}
	fmt.Fprintf(s.stdout, "  spec:           %s\n", specText(sch.Spec))
	if a, ok := sch.Action.(*client.ScheduleWorkflowAction); ok {
		wf := a.Workflow
		if f, ok := wf.(string); ok {
			wf = f
		}
		fmt.Fprintf(s.stdout, "  action:         %v on task queue %s, workflow id %s-<time>\n", wf, a.TaskQueue, a.ID)
	}
	if sch.Policy != nil {
		fmt.Fprintf(s.stdout, "  overlap:        %s\n  catch-up window: %s\n", overlapName(sch.Policy.Overlap), sch.Policy.CatchupWindow)
	}
	fmt.Fprintf(s.stdout, "  actions taken:  %d (missed catch-up window %d, skipped overlap %d)\n",
		d.Info.NumActions, d.Info.NumActionsMissedCatchupWindow, d.Info.NumActionsSkippedOverlap)
	for _, t := range d.Info.NextActionTimes {
		fmt.Fprintf(s.stdout, "  next:           %s\n", t.UTC().Format(time.RFC3339))
	}
	for _, r := range d.Info.RecentActions {
		id := ""
		if r.StartWorkflowResult != nil {
			id = r.StartWorkflowResult.WorkflowID
		}
		fmt.Fprintf(s.stdout, "  recent:         %s %s\n", r.ScheduleTime.UTC().Format(time.RFC3339), id)
	}
	for _, r := range d.Info.RunningWorkflows {
		fmt.Fprintf(s.stdout, "  running:        %s\n", r.WorkflowID)
	}
}
