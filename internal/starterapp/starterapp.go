// Package starterapp is the starter command: it starts txflow runs on Temporal, waits for them,
// and prints what they did.
package starterapp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/txn"
	"github.com/txflow/txflow/workflows"
)

const usage = `starter: starts txflow runs and reports on them.

Usage:
  starter run [--account ACC] [flags] FILE
                             process one transaction file and print its summary
                             (--profile NAME: read it with that mapping profile)
  starter sniff [--profile NAME] [-n ROWS] FILE
                             show how the file would be read, storing nothing
  starter status RUN_ID      print the current state of a run
  starter report RUN_ID      write the run's report page (report.html) again and print its path
  starter export --account ACC [--from DATE] [--to DATE] [-o FILE]
                             write the account's stored transactions as CSV (stdout by default)
  starter purge --account ACC [--yes]
                             delete everything stored under the account (asks first)
  starter rules show|history|set ...
                             print or change the rules (tag words, thresholds), kept as numbered
                             versions (starter rules help)
  starter reclassify (--account ACC | --all) [--rules N] [--yes] ...
  starter reclassify approve|reject|status ID
                             compute stored transactions again under a rules version, show the
                             diff, apply it once approved (starter reclassify help)
  starter schedule ...       create and manage schedules of the inbox (starter schedule help)
  starter help               print this help

FILE is under the worker's input root (TXFLOW_INPUT_DIR): an absolute path below it, or a path
relative to it. The run id is derived from the file's content (and the account given with
--account), so one file is never processed twice at once for one account: starting a file that
is already running follows the running one.

An account is 1 to 64 letters, digits, '-', '_', '.' or ':' (case-sensitive); a run without
--account is the default account's ("` + txn.DefaultAccount + `").

Temporal is reached through TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and
TEMPORAL_TLS_* (Temporal SDK conventions); TXFLOW_UI_URL is the Web UI address used in links.
export, purge and rules also connect to PostgreSQL with DATABASE_URL, the worker's database.
Mapping profiles (--profile) are the built-in ones and those of TXFLOW_PROFILES_DIR.
Run "starter COMMAND --help" for a command's flags.
`

// Exit codes.
const (
	ExitOK        = 0
	ExitRunFailed = 1 // the run failed, or could not be started
	ExitUsage     = 2 // bad command line or configuration
)

// Main runs the starter with args (without the program name), reading settings from env
// (the process environment when nil) and answers from the process's standard input. It returns
// the process exit code.
func Main(ctx context.Context, args []string, env config.Env, stdout, stderr io.Writer) int {
	return MainIO(ctx, args, env, os.Stdin, stdout, stderr)
}

// MainIO is Main reading answers (purge's confirmation) from stdin, which is asked only when it
// is a terminal.
func MainIO(ctx context.Context, args []string, env config.Env, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "run", "status", "schedule", "export", "purge", "sniff", "rules", "reclassify", "report":
	default:
		fmt.Fprintf(stderr, "starter: unknown command %q\n\n%s", cmd, usage)
		return ExitUsage
	}
	cfg, err := config.Load(env)
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return ExitUsage
	}
	s := &starter{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr}
	switch cmd {
	case "run":
		return s.run(ctx, args)
	case "export":
		return s.export(ctx, args)
	case "purge":
		return s.purge(ctx, args)
	case "rules":
		return s.rules(ctx, args)
	case "reclassify":
		return s.reclassify(ctx, args)
	case "sniff":
		return s.sniff(args)
	case "report":
		return s.report(ctx, args)
	case "schedule":
		return s.schedule(ctx, args)
	default:
		return s.status(ctx, args)
	}
}

type starter struct {
	cfg            config.Config
	stdin          io.Reader
	stdout, stderr io.Writer
}

// parse parses args with fs and wants n positional arguments. When the command must stop there
// (help asked, bad flags, wrong arguments) it returns false and the exit code.
func parse(fs *flag.FlagSet, args []string, n int) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() != n {
		fs.Usage()
		return ExitUsage, false
	}
	return ExitOK, true
}

func (s *starter) dial(ctx context.Context) (client.Client, error) {
	c, err := client.DialContext(ctx, s.cfg.Temporal)
	if err != nil {
		addr := s.cfg.Temporal.HostPort
		if addr == "" {
			addr = client.DefaultHostPort
		}
		return nil, fmt.Errorf("connect to temporal at %s: %w%s", addr, err, tlsHint(s.cfg.Temporal, err))
	}
	return c, nil
}

// tlsHint explains a connection a frontend with TLS closed: it gives a client without TLS, or
// without the client certificate it requires, no reason (the client reads "server preface",
// "broken pipe" or "connection reset"), so the starter says which settings are missing.
func tlsHint(o client.Options, err error) string {
	msg := err.Error()
	if strings.Contains(msg, "connection refused") {
		return ""
	}
	t := o.ConnectionOptions.TLS
	switch {
	case t == nil && strings.Contains(msg, "server preface"):
		return " (the frontend may require TLS: set TEMPORAL_TLS_SERVER_CA_CERT_PATH, and TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH when it requires client certificates)"
	case t != nil && len(t.Certificates) == 0 && t.GetClientCertificate == nil:
		return " (no client certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH if the frontend requires one)"
	}
	return ""
}

func (s *starter) run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter run", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	noWait := fs.Bool("no-wait", false, "start the run, print its workflow id and Web UI link, and exit")
	chunkSize := fs.Int64("chunk-size", workflows.DefaultChunkSize, "lines per tag/annotate activity")
	parallel := fs.Int("max-parallel", workflows.DefaultMaxParallel, "chunk activities in flight per stage")
	fs.String("account", "", "the `account` of the file's transactions (rows of a file with an account column are under\ntheir own); it is part of the run id. Without it: the default account, \""+txn.DefaultAccount+"\"")
	profile := fs.String("profile", "", "the mapping `profile` to read the file with (built-in or in TXFLOW_PROFILES_DIR); without it\nthe worker chooses one by the file's name, or recognises the file by its header")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter run [--account ACC] [--profile NAME] [flags] FILE\n\nProcesses one transaction file: ingest, tag and annotate, error report, dump.\nWaits for the run and prints its summary and output paths; exits 1 if the run failed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 1); !ok {
		return code
	}
	account, given, err := accountFlag(fs)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter run: %v\n", err)
		return ExitUsage
	}
	if *profile != "" {
		// The worker resolves the name in its own profiles; an unknown one is refused here first.
		if _, err := s.cfg.Profiles.Lookup(*profile); err != nil {
			fmt.Fprintf(s.stderr, "starter run: --profile: %v\n", err)
			return ExitUsage
		}
	}
	rel, sum, size, err := s.locate(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitUsage
	}
	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitRunFailed
	}
	defer c.Close()

	id := workflows.RunID(account, sum)
	summary, details := workflows.RunDescription(rel, sum, *chunkSize)
	input := workflows.ProcessFileInput{
		File: rel, SHA256: sum, ChunkSize: *chunkSize, MaxParallel: *parallel, Account: account,
		Profile: *profile, Size: size,
	}
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            summary,
		StaticDetails:            details,
		TypedSearchAttributes:    workflows.StartSearchAttributes(input),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.ProcessFile, input)
	if unknownSearchAttributes(err) {
		// A namespace no worker has prepared yet (the workers register the attributes when
		// they start): the run starts without them and records them itself.
		opts.TypedSearchAttributes = temporal.SearchAttributes{}
		run, err = c.ExecuteWorkflow(ctx, opts, workflows.ProcessFile, input)
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "starter: start run of %s: %v\n", rel, err)
		return ExitRunFailed
	}
	link := s.cfg.WorkflowURL(id)
	onAccount := ""
	if given {
		onAccount = ", account " + account
	}
	if *noWait {
		fmt.Fprintf(s.stdout, "started %s (file %s%s)\nworkflow id: %s\nrun id:      %s\nWeb UI:      %s\n", id, rel, onAccount, id, run.GetRunID(), link)
		return ExitOK
	}
	if given {
		fmt.Fprintf(s.stdout, "run %s: %s (account %s)\nWeb UI: %s\n", id, rel, account, link)
	} else {
		fmt.Fprintf(s.stdout, "run %s: %s\nWeb UI: %s\n", id, rel, link)
	}

	start := time.Now()
	var sum2 workflows.Summary
	stopProgress := s.showProgress(ctx, c, id, run.GetRunID())
	runErr := run.Get(ctx, &sum2)
	stopProgress()
	if runErr != nil {
		// A failed run returns no result: its summary comes from the progress query.
		if q, err := c.QueryWorkflow(ctx, id, run.GetRunID(), workflows.ProgressQuery); err == nil {
			_ = q.Get(&sum2)
		}
	}
	PrintSummary(s.stdout, &sum2, time.Since(start))
	if runErr != nil {
		msg := sum2.Error
		if msg == "" {
			msg = runErr.Error()
		}
		fmt.Fprintf(s.stderr, "starter: run %s failed: %s\n", id, msg)
		return ExitRunFailed
	}
	return ExitOK
}

func (s *starter) status(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter status", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter status RUN_ID\n\nPrints the current state of a run: its status, counts and stages.\n"+
			"Exits 0 when the run completed or is still running, 1 when it failed (or was terminated,\ncanceled or timed out) or cannot be found.\n")
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
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		fmt.Fprintf(s.stderr, "starter: describe %s: %v\n", id, err)
		return ExitRunFailed
	}
	info := desc.GetWorkflowExecutionInfo()
	fmt.Fprintf(s.stdout, "run %s: %s\nWeb UI: %s\n", id, strings.ToLower(strings.TrimPrefix(info.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")), s.cfg.WorkflowURL(id))
	q, err := c.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter: query %s: %v\n", id, err)
		return ExitRunFailed
	}
	var sum workflows.Summary
	if err := q.Get(&sum); err != nil {
		fmt.Fprintf(s.stderr, "starter: decode progress of %s: %v\n", id, err)
		return ExitRunFailed
	}
	PrintSummary(s.stdout, &sum, 0)
	return StatusExitCode(info.GetStatus())
}

// StatusExitCode is the exit code of starter status for a run in status st: ExitOK when it
// completed or is still running (continued-as-new counts as running on), ExitRunFailed when it
// failed, was terminated or canceled, or timed out.
func StatusExitCode(st enumspb.WorkflowExecutionStatus) int {
	switch st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
		enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return ExitRunFailed
	}
	return ExitOK
}

// unknownSearchAttributes says whether err refused a start for search attributes the namespace
// does not have.
func unknownSearchAttributes(err error) bool {
	var invalid *serviceerror.InvalidArgument
	return errors.As(err, &invalid) && strings.Contains(strings.ToLower(invalid.Error()), "search attribute")
}

// locate finds the file under the input root, hashes it and gives its size. A relative path is taken relative
// to the input root, or, when no such file is there, to the current directory.
func (s *starter) locate(file string) (rel, sum string, size int64, err error) {
	root := s.cfg.InputDir
	if !filepath.IsAbs(file) {
		if _, err := os.Stat(filepath.Join(root, file)); err != nil {
			if abs, err := filepath.Abs(file); err == nil {
				if _, err := os.Stat(abs); err == nil {
					file = abs
				}
			}
		}
	}
	rel, err = activities.RelativeInput(root, file)
	if err != nil {
		return "", "", 0, fmt.Errorf("%w (TXFLOW_INPUT_DIR=%s)", err, root)
	}
	abs, err := activities.ResolveInput(root, rel)
	if err != nil {
		return "", "", 0, err
	}
	if sum, err = activities.HashFile(abs); err != nil {
		return "", "", 0, err
	}
	// The size is a hint for the run (ProcessFileInput.Size); the hash is what the run checks.
	if st, err := os.Stat(abs); err == nil {
		size = st.Size()
	}
	return filepath.ToSlash(rel), sum, size, nil
}

// PrintSummary prints a run's summary for people.
func PrintSummary(w io.Writer, s *workflows.Summary, took time.Duration) {
	if s.RunID == "" {
		return
	}
	status := s.Status
	if took > 0 {
		status = fmt.Sprintf("%s in %s", status, took.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%s\n", status)
	switch {
	case s.AccountColumn:
		fmt.Fprintf(w, "  account    %s (rows of the file's account column are under their own)\n", s.Account)
	case s.Account != "" && s.Account != txn.DefaultAccount:
		fmt.Fprintf(w, "  account    %s\n", s.Account)
	}
	if s.Profile != "" {
		fmt.Fprintf(w, "  profile    %s\n", s.Profile)
	}
	if s.RulesVersion > 0 {
		fmt.Fprintf(w, "  rules      version %d\n", s.RulesVersion)
	}
	rows := []struct {
		label string
		n     int64
		extra string
	}{
		{"rows read", s.RowsRead, ""},
		{"ingested", s.Ingested, fmt.Sprintf("(new %d)", s.New)},
		{"rejected", s.Rejected, ""},
		{"in error", s.InError, ""},
		{"tagged", s.Tagged, ""},
		{"annotated", s.Annotated, ""},
	}
	for _, r := range rows {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-10s %10d %s", r.label, r.n, r.extra), " "))
	}
	fmt.Fprintln(w, "stages:")
	for _, st := range s.Stages {
		line := fmt.Sprintf("  %-9s %s", st.Name, st.Status)
		if st.Total > 0 && st.Status == workflows.StatusRunning {
			line += fmt.Sprintf(" %d/%d", st.Done, st.Total)
		}
		if st.Error != "" {
			line += ": " + st.Error
		}
		fmt.Fprintln(w, line)
	}
	if s.Outputs.Transactions != "" || s.Outputs.ErrorReport != "" {
		fmt.Fprintln(w, "outputs:")
		for _, p := range []string{s.Outputs.Transactions, s.Outputs.ErrorReport, s.Outputs.Summary} {
			if p != "" {
				fmt.Fprintf(w, "  %s\n", p)
			}
		}
	}
	if p := ReportPath(s); p != "" {
		fmt.Fprintf(w, "report:\n  %s\n", p)
	}
}
