package starterapp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

const rulesUsage = `Usage:
  starter rules show [--version N]   print the current rules, or version N
  starter rules history              list every version of the rules, the oldest first
  starter rules set [--tag-words A,B] [--large-sale-above X] [--expense-below Y]
                    [--amount-limit Z] --note TEXT
                                     make a new version from the current one, changing only the
                                     rules given

The rules (tag words and thresholds) are stored in the worker's database as numbered versions that
never change. A run applies the version current when its ingestion starts, to all its chunks,
whichever worker runs them; a new version applies to runs started after it. When there is no
version yet, the first worker or starter that needs one makes version 1 from its TXFLOW_TAG_WORDS,
TXFLOW_LARGE_SALE_ABOVE, TXFLOW_EXPENSE_BELOW and TXFLOW_AMOUNT_LIMIT. Needs DATABASE_URL.
`

// rules runs "starter rules show|history|set".
func (s *starter) rules(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(s.stderr, rulesUsage)
		return ExitUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(s.stdout, rulesUsage)
		return ExitOK
	case "show":
		return s.rulesShow(ctx, args)
	case "history":
		return s.rulesHistory(ctx, args)
	case "set":
		return s.rulesSet(ctx, args)
	default:
		fmt.Fprintf(s.stderr, "starter rules: unknown command %q\n\n%s", sub, rulesUsage)
		return ExitUsage
	}
}

// rulesDB opens the worker's database for a rules command; it prints why it cannot and returns
// the exit code then.
func (s *starter) rulesDB(ctx context.Context, cmd string) (*postgres.DB, int) {
	if s.cfg.DatabaseURL == "" {
		fmt.Fprintf(s.stderr, "starter %s: %v\n", cmd, errNoDatabaseURL)
		return nil, ExitUsage
	}
	db, err := s.openDB(ctx, 0)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter %s: %v\n", cmd, err)
		return nil, ExitRunFailed
	}
	return db, ExitOK
}

// rulesError prints a database error of a rules command, saying what to do when the database
// has no rules table yet (no worker of this release has migrated it).
func (s *starter) rulesError(cmd string, err error) int {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		fmt.Fprintf(s.stderr, "starter %s: the database has no rules versions table: start a worker of this release once, it migrates the database (%v)\n", cmd, err)
		return ExitRunFailed
	}
	fmt.Fprintf(s.stderr, "starter %s: %v\n", cmd, err)
	return ExitRunFailed
}

func (s *starter) rulesShow(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter rules show", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	version := fs.Int("version", 0, "the `version` to print (default: the current one)")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter rules show [--version N]\n\nPrints the current rules (making version 1 from the TXFLOW_* settings when there is none),\nor version N. Needs DATABASE_URL.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 0); !ok {
		return code
	}
	versionGiven := false
	fs.Visit(func(f *flag.Flag) { versionGiven = versionGiven || f.Name == "version" })
	if versionGiven && *version <= 0 {
		fmt.Fprintf(s.stderr, "starter rules show: --version: %d is not a version (1, 2, ...)\n", *version)
		return ExitUsage
	}
	db, code := s.rulesDB(ctx, "rules show")
	if db == nil {
		return code
	}
	defer db.Close()
	cur, err := db.CurrentRules(ctx, s.cfg.Rules)
	if err != nil {
		return s.rulesError("rules show", err)
	}
	v := cur
	if versionGiven && *version != cur.Version {
		if v, err = db.RulesByVersion(ctx, *version); errors.Is(err, postgres.ErrRulesVersionNotFound) {
			fmt.Fprintf(s.stderr, "starter rules show: no rules version %d: versions are 1 to %d\n", *version, cur.Version)
			return ExitUsage
		} else if err != nil {
			return s.rulesError("rules show", err)
		}
	}
	PrintRules(s.stdout, v, cur.Version)
	return ExitOK
}

func (s *starter) rulesHistory(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter rules history", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter rules history\n\nLists every version of the rules, the oldest first (making version 1 from the TXFLOW_*\nsettings when there is none). Needs DATABASE_URL.\n")
	}
	if code, ok := parse(fs, args, 0); !ok {
		return code
	}
	db, code := s.rulesDB(ctx, "rules history")
	if db == nil {
		return code
	}
	defer db.Close()
	if _, err := db.CurrentRules(ctx, s.cfg.Rules); err != nil {
		return s.rulesError("rules history", err)
	}
	hist, err := db.RulesHistory(ctx)
	if err != nil {
		return s.rulesError("rules history", err)
	}
	PrintRulesHistory(s.stdout, hist)
	return ExitOK
}

func (s *starter) rulesSet(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter rules set", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	tagWords := fs.String("tag-words", "", "the tag `words`, comma-separated, case-sensitive (replace the current ones)")
	large := fs.String("large-sale-above", "", "amounts above this `amount` are LARGE SALE")
	expense := fs.String("expense-below", "", "amounts below this `amount` are EXPENSE")
	limit := fs.String("amount-limit", "", "amounts whose absolute value exceeds this `amount` are in error (amount_too_high)")
	note := fs.String("note", "", "why the rules change, kept with the version (required)")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter rules set [--tag-words A,B] [--large-sale-above X] [--expense-below Y]\n"+
			"                         [--amount-limit Z] --note TEXT\n\n"+
			"Makes a new version of the rules from the current one, changing only the rules given. Runs\n"+
			"started from then on apply it; runs under way keep the version they started with. Needs\n"+
			"DATABASE_URL.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 0); !ok {
		return code
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fail := func(format string, a ...any) int {
		fmt.Fprintf(s.stderr, "starter rules set: "+format+"\n", a...)
		return ExitUsage
	}
	if strings.TrimSpace(*note) == "" {
		return fail("--note is required: say why the rules change")
	}
	if !given["tag-words"] && !given["large-sale-above"] && !given["expense-below"] && !given["amount-limit"] {
		return fail("nothing to change: give at least one of --tag-words, --large-sale-above, --expense-below, --amount-limit")
	}
	var words []string
	if given["tag-words"] {
		var err error
		if words, err = txn.ParseTagWords(*tagWords); err != nil {
			return fail("--tag-words: %v", err)
		}
	}
	amounts := map[string]decimal.Decimal{}
	for _, f := range []struct{ name, value string }{{"large-sale-above", *large}, {"expense-below", *expense}, {"amount-limit", *limit}} {
		if !given[f.name] {
			continue
		}
		d, err := decimal.NewFromString(strings.TrimSpace(f.value))
		if err != nil {
			return fail("--%s: %q is not a decimal number (such as 300 or -200.50)", f.name, f.value)
		}
		amounts[f.name] = d
	}

	db, code := s.rulesDB(ctx, "rules set")
	if db == nil {
		return code
	}
	defer db.Close()
	cur, err := db.CurrentRules(ctx, s.cfg.Rules)
	if err != nil {
		return s.rulesError("rules set", err)
	}
	next := cur.Rules
	next.TagWords = append([]string(nil), cur.Rules.TagWords...)
	if words != nil {
		next.TagWords = words
	}
	for name, dst := range map[string]*decimal.Decimal{
		"large-sale-above": &next.LargeSaleAbove, "expense-below": &next.ExpenseBelow, "amount-limit": &next.AmountLimit,
	} {
		if d, ok := amounts[name]; ok {
			*dst = d
		}
	}
	if err := next.Validate(); err != nil {
		return fail("%v (nothing stored)", err)
	}
	if next.Equal(cur.Rules) {
		return fail("the rules given are those of the current version %d: nothing stored", cur.Version)
	}
	v, err := db.SetRules(ctx, next, *note)
	if err != nil {
		return s.rulesError("rules set", err)
	}
	fmt.Fprintf(s.stderr, "rules version %d made (was %d); runs started from now on apply it\n", v.Version, cur.Version)
	PrintRules(s.stdout, v, v.Version)
	return ExitOK
}

// PrintRules prints one version of the rules for people; current is the current version's
// number.
func PrintRules(w io.Writer, v postgres.RulesVersion, current int) {
	state := ""
	if v.Version == current {
		state = " (current)"
	}
	fmt.Fprintf(w, "rules version %d%s\n", v.Version, state)
	fmt.Fprintf(w, "  created           %s\n", v.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  note              %s\n", v.Note)
	fmt.Fprintf(w, "  tag words         %s\n", strings.Join(v.Rules.TagWords, ","))
	fmt.Fprintf(w, "  large sale above  %s\n", v.Rules.LargeSaleAbove)
	fmt.Fprintf(w, "  expense below     %s\n", v.Rules.ExpenseBelow)
	fmt.Fprintf(w, "  amount limit      %s\n", v.Rules.AmountLimit)
}

// PrintRulesHistory prints the versions as a table, one line each.
func PrintRulesHistory(w io.Writer, hist []postgres.RulesVersion) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCREATED\tTAG WORDS\tLARGE SALE ABOVE\tEXPENSE BELOW\tAMOUNT LIMIT\tNOTE")
	for _, v := range hist {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strconv.Itoa(v.Version), v.CreatedAt.UTC().Format(time.RFC3339),
			strings.Join(v.Rules.TagWords, ","), v.Rules.LargeSaleAbove, v.Rules.ExpenseBelow, v.Rules.AmountLimit,
			strings.ReplaceAll(v.Note, "\n", " "))
	}
	_ = tw.Flush()
}
