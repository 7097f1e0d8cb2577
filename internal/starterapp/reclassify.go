package starterapp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/workflows"
)

const reclassifyUsage = `Usage:
  starter reclassify (--account ACC | --all) [--from DATE] [--to DATE] [--rules N] [--yes]
                     [--timeout 168h]
                             compute the stored transactions again under a version of the rules
                             (the current one by default), write the diff and wait for a decision
  starter reclassify approve ID [--by NAME] [--note TEXT] [--no-wait]
                             apply the diff of a reclassification waiting for approval
  starter reclassify reject ID [--by NAME] [--note TEXT]
                             end it without applying anything
  starter reclassify status ID
                             print where a reclassification is, and its counts

A reclassification computes the account's stored transactions (dated from --from to --to, both
included, YYYY-MM-DD; a transaction without a date only when neither is given) again under the
rules version and writes <output root>/<ID>/reclassify_diff.csv: one row per transaction whose
tag, annotation or error would change. Nothing changes until it is approved; without a decision
within --timeout it expires and applies nothing. --yes applies at once. An approved
reclassification writes the new results (and, with delivery on, publishes them with a new
result version). One at a time: a reclassification is refused while another has not ended.
See docs/rules.md.
`

// reclassify runs "starter reclassify ..." .
func (s *starter) reclassify(ctx context.Context, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			fmt.Fprint(s.stdout, reclassifyUsage)
			return ExitOK
		case "approve", "reject":
			return s.reclassifyDecide(ctx, args[0], args[1:])
		case "status":
			return s.reclassifyStatus(ctx, args[1:])
		}
	}
	return s.reclassifyStart(ctx, args)
}

func (s *starter) reclassifyStart(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter reclassify", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.String("account", "", "the `account` whose stored transactions to reclassify")
	all := fs.Bool("all", false, "reclassify every account's stored transactions")
	from := fs.String("from", "", "only transactions dated from this `date` (YYYY-MM-DD, included)")
	to := fs.String("to", "", "only transactions dated up to this `date` (YYYY-MM-DD, included)")
	rules := fs.Int("rules", 0, "the rules `version` to apply (default: the current one)")
	yes := fs.Bool("yes", false, "apply without waiting for approval")
	timeout := fs.Duration("timeout", workflows.DefaultReclassifyTimeout, "how long to wait for a decision before it expires, applying nothing")
	chunkSize := fs.Int64("chunk-size", workflows.DefaultChunkSize, "stored transactions (of any account) each dry run activity reads; apply goes by the same chunks")
	parallel := fs.Int("max-parallel", workflows.DefaultMaxParallel, "chunk activities in flight")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, reclassifyUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 0); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(s.stderr, "starter reclassify: "+format+"\n", a...)
		return ExitUsage
	}
	account, given, err := accountFlag(fs)
	if err != nil {
		return fail("%v", err)
	}
	switch {
	case given && *all:
		return fail("--account and --all: give one of them")
	case !given && !*all:
		return fail("give --account ACC, or --all for every account")
	}
	var dates [2]time.Time
	for i, d := range []struct{ name, value string }{{"from", *from}, {"to", *to}} {
		if d.value == "" {
			continue
		}
		if dates[i], err = time.Parse(time.DateOnly, d.value); err != nil {
			return fail("--%s: %q is not a date (YYYY-MM-DD)", d.name, d.value)
		}
	}
	if *from != "" && *to != "" && dates[1].Before(dates[0]) {
		return fail("the range ends (%s) before it starts (%s)", *to, *from)
	}
	if *rules < 0 {
		return fail("--rules: %d is not a version (1, 2, ...)", *rules)
	}
	if *timeout <= 0 {
		return fail("--timeout must be positive")
	}
	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitRunFailed
	}
	defer c.Close()

	unique := make([]byte, 4)
	_, _ = rand.Read(unique)
	id := workflows.ReclassifyID(account, hex.EncodeToString(unique))
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:         "Reclassify " + strings.TrimPrefix(id, "reclassify-"),
	}, workflows.Reclassify, workflows.ReclassifyInput{
		Account: account, All: *all, From: *from, To: *to, RulesVersion: *rules, Yes: *yes, Timeout: *timeout,
		ChunkSize: *chunkSize, MaxParallel: *parallel,
	})
	if err != nil {
		fmt.Fprintf(s.stderr, "starter: start reclassification: %v\n", err)
		return ExitRunFailed
	}
	fmt.Fprintf(s.stdout, "reclassification %s started\nWeb UI: %s\n", id, s.cfg.WorkflowURL(id))

	if *yes {
		var st workflows.ReclassifyState
		if err := run.Get(ctx, &st); err != nil {
			return s.reclassifyFailed(ctx, c, id, err)
		}
		PrintReclassify(s.stdout, &st)
		return ExitOK
	}
	// Wait for the diff: until the reclassification waits for a decision, or ended.
	for {
		st, err := queryReclassify(ctx, c, id)
		if err == nil && (st.Status == workflows.ReclassifyAwaiting || st.Ended()) {
			PrintReclassify(s.stdout, st)
			if st.Status == workflows.ReclassifyFailed {
				fmt.Fprintf(s.stderr, "starter: reclassification %s failed: %s\n", id, st.Error)
				return ExitRunFailed
			}
			return ExitOK
		}
		if err != nil {
			// A workflow that failed before answering a query (a bad input) has its error.
			desc, derr := c.DescribeWorkflowExecution(ctx, id, "")
			if derr == nil && desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return s.reclassifyFailed(ctx, c, id, run.Get(ctx, nil))
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(s.stderr, "starter: reclassification %s: %v\n", id, ctx.Err())
			return ExitRunFailed
		case <-time.After(progressPoll):
		}
	}
}

// reclassifyFailed prints why a reclassification failed, with its state when it answers.
func (s *starter) reclassifyFailed(ctx context.Context, c client.Client, id string, runErr error) int {
	if st, err := queryReclassify(ctx, c, id); err == nil {
		PrintReclassify(s.stdout, st)
	}
	fmt.Fprintf(s.stderr, "starter: reclassification %s failed: %s\n", id, message(runErr))
	return ExitRunFailed
}

func queryReclassify(ctx context.Context, c client.Client, id string) (*workflows.ReclassifyState, error) {
	q, err := c.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
	if err != nil {
		return nil, err
	}
	var st workflows.ReclassifyState
	if err := q.Get(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// message is the innermost message of a workflow or update error, without Temporal's wrapping.
func message(err error) string {
	if err == nil {
		return "unknown error"
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

func (s *starter) reclassifyDecide(ctx context.Context, kind string, args []string) int {
	fs := flag.NewFlagSet("starter reclassify "+kind, flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	by := fs.String("by", "", "who decides (recorded in the summary)")
	note := fs.String("note", "", "why (recorded in the summary)")
	noWait := fs.Bool("no-wait", false, "return once the decision is recorded, without waiting for the new results to be applied")
	fs.Usage = func() {
		fmt.Fprintf(s.stderr, "Usage: starter reclassify %s ID [--by NAME] [--note TEXT]\n\n", kind)
		if kind == workflows.ReclassifyApproveUpdate {
			fmt.Fprint(s.stderr, "Applies the diff of a reclassification waiting for approval and waits until it is applied\n(--no-wait: only until the decision is recorded).")
		} else {
			fmt.Fprint(s.stderr, "Ends a reclassification waiting for approval without applying anything.")
		}
		fmt.Fprint(s.stderr, " Exits 1 when the reclassification refuses the decision\n(not ready yet, already decided, expired), with the reason.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// The id may come before the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if code, ok := parse(fs, args, boolInt(id == "")); !ok {
		return code
	}
	if id == "" {
		id = fs.Arg(0)
	}
	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitRunFailed
	}
	defer c.Close()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   kind,
		Args:         []any{workflows.Decision{By: *by, Note: *note}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.ReclassifyState
	if err == nil {
		err = h.Get(ctx, &st)
	}
	if err != nil {
		msg := message(err)
		// A reclassification that has ended takes no Update: its state says why.
		if ended, qerr := queryReclassify(ctx, c, id); qerr == nil && ended.Ended() && ended.Refusal() != nil {
			msg = ended.Refusal().Error()
		}
		fmt.Fprintf(s.stderr, "starter reclassify %s: %s\n", kind, msg)
		return ExitRunFailed
	}
	fmt.Fprintf(s.stdout, "reclassification %s %s\n", id, st.Decision.Decision)
	if kind == workflows.ReclassifyRejectUpdate || *noWait {
		if kind == workflows.ReclassifyApproveUpdate {
			fmt.Fprintf(s.stdout, "applying %d changes; follow with: starter reclassify status %s\n", st.Changed, id)
		}
		return ExitOK
	}
	var done workflows.ReclassifyState
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &done); err != nil {
		return s.reclassifyFailed(ctx, c, id, err)
	}
	PrintReclassify(s.stdout, &done)
	return ExitOK
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *starter) reclassifyStatus(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter reclassify status", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter reclassify status ID\n\nPrints where a reclassification is, its counts and, while it waits, how to decide.\n"+
			"Exits 0 unless it failed or cannot be found.\n")
	}
	if code, ok := parse(fs, args, 1); !ok {
		return code
	}
	id := fs.Arg(0)
	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitRunFailed
	}
	defer c.Close()
	st, err := queryReclassify(ctx, c, id)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter: query %s: %v\n", id, err)
		return ExitRunFailed
	}
	PrintReclassify(s.stdout, st)
	if st.Status == workflows.ReclassifyFailed {
		return ExitRunFailed
	}
	return ExitOK
}

// PrintReclassify prints a reclassification's state for people.
func PrintReclassify(w io.Writer, st *workflows.ReclassifyState) {
	target := "every account"
	if st.Account != "" {
		target = "account " + st.Account
	}
	if st.From != "" || st.To != "" {
		target += fmt.Sprintf(", dated %s to %s", orDots(st.From), orDots(st.To))
	}
	fmt.Fprintf(w, "reclassification %s: %s\n", st.ID, st.Status)
	fmt.Fprintf(w, "  target       %s\n", target)
	if st.RulesVersion > 0 {
		fmt.Fprintf(w, "  rules        version %d", st.RulesVersion)
		if len(st.Sources) > 0 {
			var src []string
			for _, v := range st.Sources {
				name := "none"
				if v.Version > 0 {
					name = fmt.Sprintf("version %d", v.Version)
				}
				src = append(src, fmt.Sprintf("%s: %d", name, v.Items))
			}
			fmt.Fprintf(w, " (stored results from %s)", strings.Join(src, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, r := range []struct {
		label string
		n     int64
	}{
		{"transactions", st.Items}, {"changed", st.Changed}, {"tag", st.TagChanged},
		{"annotation", st.AnnotationChanged}, {"error", st.ErrorChanged}, {"applied", st.Applied},
	} {
		fmt.Fprintf(w, "  %-12s %10d\n", r.label, r.n)
	}
	if st.Delivery {
		fmt.Fprintf(w, "  %-12s %10d\n", "published", st.Published)
	}
	if st.Error != "" {
		fmt.Fprintf(w, "  error        %s\n", st.Error)
	}
	if st.Decision != nil {
		d := st.Decision.Decision
		if st.Decision.Auto {
			d += " (--yes)"
		}
		if st.Decision.By != "" {
			d += " by " + st.Decision.By
		}
		d += " at " + st.Decision.At.UTC().Format(time.RFC3339)
		if st.Decision.Note != "" {
			d += ": " + st.Decision.Note
		}
		fmt.Fprintf(w, "  decision     %s\n", d)
	}
	if st.Diff != "" {
		fmt.Fprintf(w, "diff: %s\n", st.Diff)
	}
	if st.Summary != "" {
		fmt.Fprintf(w, "summary: %s\n", st.Summary)
	}
	if st.Status == workflows.ReclassifyAwaiting {
		if st.ExpiresAt != nil {
			fmt.Fprintf(w, "waiting for a decision until %s:\n", st.ExpiresAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "  starter reclassify approve %s\n  starter reclassify reject %s\n", st.ID, st.ID)
	}
}

func orDots(s string) string {
	if s == "" {
		return "…"
	}
	return s
}
