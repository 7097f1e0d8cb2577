package starterapp

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
	"github.com/txflow/txflow/workflows"
)

// exportBuffer is the write buffer between the database's COPY stream and the output.
const exportBuffer = 1 << 20

// accountFlag returns the value of fs's --account flag, validated by txn.ParseAccount (and
// trimmed), and whether it was given at all. An --account given empty is an error.
func accountFlag(fs *flag.FlagSet) (account string, given bool, err error) {
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "account" {
			given = true
		}
	})
	if !given {
		return "", false, nil
	}
	account, err = txn.ParseAccount(fs.Lookup("account").Value.String())
	if err != nil {
		return "", true, fmt.Errorf("--account: %w", err)
	}
	return account, true, nil
}

// requiredAccount is accountFlag for the commands that need an account.
func requiredAccount(fs *flag.FlagSet) (string, error) {
	account, given, err := accountFlag(fs)
	if err == nil && !given {
		err = errors.New("--account is required")
	}
	return account, err
}

// errNoDatabaseURL says why export and purge need DATABASE_URL.
var errNoDatabaseURL = errors.New("DATABASE_URL is not set: set it to the worker's database (the same DATABASE_URL the worker uses)")

// openDB connects to the worker's database, with statementTimeout as the bound on one statement
// (0: TXFLOW_DB_STATEMENT_TIMEOUT's value).
func (s *starter) openDB(ctx context.Context, statementTimeout time.Duration) (*postgres.DB, error) {
	opts := s.cfg.Database
	if statementTimeout != 0 {
		opts.StatementTimeout = statementTimeout
	}
	db, err := postgres.OpenWith(ctx, s.cfg.DatabaseURL, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to the database (DATABASE_URL): %w", err)
	}
	return db, nil
}

func (s *starter) export(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter export", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.String("account", "", "the `account` whose stored transactions are written (required)")
	out := fs.String("o", "-", "output `file`, written atomically (temporary file, fsync, rename); - for standard output")
	fromFlag := fs.String("from", "", "only the transactions dated on or after this `date` (yyyy-mm-dd)")
	toFlag := fs.String("to", "", "only the transactions dated on or before this `date` (yyyy-mm-dd)")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter export --account ACC [--from DATE] [--to DATE] [-o FILE]\n\n"+
			"Writes every transaction stored under the account as CSV, in id order, with the columns of\n"+
			"output_transactions.csv: id,amount,wording,tag,annotation,error, and a date column after the\n"+
			"id when the account's files had dates. --from and --to keep the transactions dated within the\n"+
			"range (both ends included; transactions without a date are then left out). It streams from\n"+
			"PostgreSQL (COPY), so an account of any size is exported; it reads the worker's database,\n"+
			"DATABASE_URL. Says on standard error how many transactions it wrote.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 0); !ok {
		return code
	}
	account, err := requiredAccount(fs)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter export: %v\n", err)
		return ExitUsage
	}
	var from, to *time.Time
	for _, b := range []struct {
		name, value string
		dst         **time.Time
	}{{"from", *fromFlag, &from}, {"to", *toFlag, &to}} {
		if b.value == "" {
			continue
		}
		d, err := time.Parse(time.DateOnly, b.value)
		if err != nil {
			fmt.Fprintf(s.stderr, "starter export: --%s: %q is not a date of the form yyyy-mm-dd\n", b.name, b.value)
			return ExitUsage
		}
		*b.dst = &d
	}
	if from != nil && to != nil && to.Before(*from) {
		fmt.Fprintf(s.stderr, "starter export: --to %s is before --from %s\n", *toFlag, *fromFlag)
		return ExitUsage
	}
	if s.cfg.DatabaseURL == "" {
		fmt.Fprintf(s.stderr, "starter export: %v\n", errNoDatabaseURL)
		return ExitUsage
	}
	// One COPY streams the whole account: no bound on how long it may take.
	db, err := s.openDB(ctx, -1)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter export: %v\n", err)
		return ExitRunFailed
	}
	defer db.Close()

	var n int64
	dest := "standard output"
	if *out == "-" || *out == "" {
		w := bufio.NewWriterSize(s.stdout, exportBuffer)
		n, err = db.ExportAccount(ctx, account, from, to, w)
		if err == nil {
			err = w.Flush()
		}
	} else {
		dest = *out
		err = writeFileAtomic(*out, func(w io.Writer) error {
			var err error
			n, err = db.ExportAccount(ctx, account, from, to, w)
			return err
		})
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "starter export: account %s to %s: %v\n", account, dest, err)
		return ExitRunFailed
	}
	if n == 0 {
		fmt.Fprintf(s.stderr, "account %s has no stored transactions: wrote the header only to %s\n", account, dest)
	} else {
		fmt.Fprintf(s.stderr, "exported %d transaction(s) of account %s to %s\n", n, account, dest)
	}
	return ExitOK
}

// writeFileAtomic writes path with write through a buffer into a temporary file beside it, syncs
// it and renames it over path, so that path is either the whole new content or untouched.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, exportBuffer)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync output: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close output: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename output: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (s *starter) purge(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter purge", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.String("account", "", "the `account` whose stored data is deleted (required)")
	yes := fs.Bool("yes", false, "do not ask for confirmation (needed without a terminal)")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter purge --account ACC [--yes]\n\n"+
			"Deletes everything stored under the account, in one transaction: its transactions, their tags\n"+
			"and annotations, and the run lines and rejected rows filed under it. Other accounts' data and\n"+
			"the runs' output files are kept. It asks for confirmation on the terminal unless --yes, and\n"+
			"refuses while a run of the account is in flight (a Temporal visibility query on TxflowAccount).\n"+
			"It reads the worker's database, DATABASE_URL. Prints what it deleted, per table.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 0); !ok {
		return code
	}
	account, err := requiredAccount(fs)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter purge: %v\n", err)
		return ExitUsage
	}
	if s.cfg.DatabaseURL == "" {
		fmt.Fprintf(s.stderr, "starter purge: %v\n", errNoDatabaseURL)
		return ExitUsage
	}
	if !*yes && !isTerminal(s.stdin) {
		fmt.Fprintf(s.stderr, "starter purge: standard input is not a terminal to confirm on: add --yes to purge account %s without asking\n", account)
		return ExitUsage
	}

	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter purge: %v\n", err)
		return ExitRunFailed
	}
	defer c.Close()
	running, err := RunningRuns(ctx, c, s.cfg.Temporal.Namespace, account)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter purge: %v\n", err)
		return ExitRunFailed
	}
	if len(running) > 0 {
		fmt.Fprintf(s.stderr, "starter purge: account %s has %d run(s) in flight: %s; purge it once they have ended (nothing deleted)\n",
			account, len(running), strings.Join(running, ", "))
		return ExitRunFailed
	}
	if !*yes {
		ok, err := Confirm(s.stdin, s.stderr, account)
		if err != nil {
			fmt.Fprintf(s.stderr, "starter purge: read confirmation: %v\n", err)
			return ExitRunFailed
		}
		if !ok {
			fmt.Fprintf(s.stderr, "starter purge: not confirmed, nothing deleted\n")
			return ExitRunFailed
		}
	}

	// The deletes of a large account may take longer than one statement is allowed by default.
	db, err := s.openDB(ctx, -1)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter purge: %v\n", err)
		return ExitRunFailed
	}
	defer db.Close()
	counts, err := db.PurgeAccount(ctx, account)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter purge: account %s: %v (nothing deleted)\n", account, err)
		return ExitRunFailed
	}
	PrintPurge(s.stdout, account, counts)
	return ExitOK
}

// PrintPurge prints what a purge deleted, per table.
func PrintPurge(w io.Writer, account string, c postgres.PurgeCounts) {
	fmt.Fprintf(w, "purged account %s:\n", account)
	for _, r := range []struct {
		table string
		n     int64
	}{
		{"transactions", c.Transactions},
		{"tags", c.Tags},
		{"annotations", c.Annotations},
		{"run_lines", c.RunLines},
		{"rejected_rows", c.RejectedRows},
	} {
		fmt.Fprintf(w, "  %-14s %10d deleted\n", r.table, r.n)
	}
}

// Confirm asks on w to type the account's name to purge it and reads the answer from r; only the
// account's name, exactly, confirms.
func Confirm(r io.Reader, w io.Writer, account string) (bool, error) {
	fmt.Fprintf(w, "This deletes every transaction, tag, annotation, run line and rejected row stored under account %s.\n"+
		"Type the account's name to confirm: ", account)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return strings.TrimSpace(line) == account, nil
}

// RunningQuery is the visibility query of the runs of account still in flight.
func RunningQuery(account string) string {
	return fmt.Sprintf("%s = '%s' AND ExecutionStatus = 'Running'", workflows.SearchAttrAccount.GetName(), account)
}

// RunningRuns returns the workflow ids of account's runs in flight, as Temporal's visibility
// store has them (a run is listed once it has set its search attributes, at its start). account
// must be valid (txn.ParseAccount): it holds no quote.
func RunningRuns(ctx context.Context, c client.Client, namespace, account string) ([]string, error) {
	var ids []string
	req := &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: RunningQuery(account)}
	for {
		resp, err := c.ListWorkflow(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("list the runs of account %s in flight (query %q): %w", account, req.Query, err)
		}
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		if len(resp.GetNextPageToken()) == 0 {
			return ids, nil
		}
		req.NextPageToken = resp.GetNextPageToken()
	}
}
