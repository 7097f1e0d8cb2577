package starterapp

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/txflow/txflow/txn"
)

// sniff prints what txflow sees in a file before anything is stored: no database, no Temporal.
// The verdict is built by txn.Sniff; this only finds the file and the profile, and prints.
func (s *starter) sniff(args []string) int {
	fs := flag.NewFlagSet("starter sniff", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	profile := fs.String("profile", "", "the mapping `profile` to read the file with; without it one whose filename pattern\nmatches, or none")
	rows := fs.Int("n", 10, "accepted and rejected `rows` to show, at most")
	fs.String("account", "", "the `account` the derived ids are computed for (default: \""+txn.DefaultAccount+"\")")
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter sniff [--profile NAME] [--account ACC] [-n ROWS] FILE\n\n"+
			"Shows how txflow reads FILE, storing nothing (no database, no Temporal needed): encoding,\n"+
			"delimiter, header line and skipped lines, the column of each role and why, the date format,\n"+
			"the debit/credit convention, the first rows as they would be stored, the rows that would be\n"+
			"rejected and why, and the line accounting. Exits 1 when the file cannot be read, with the\n"+
			"message a run of it would fail with.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, 1); !ok {
		return code
	}
	account, _, err := accountFlag(fs)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter sniff: %v\n", err)
		return ExitUsage
	}
	file := fs.Arg(0)
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) && !filepath.IsAbs(file) {
		// As for run: a path relative to the input root.
		if _, err := os.Stat(filepath.Join(s.cfg.InputDir, file)); err == nil {
			file = filepath.Join(s.cfg.InputDir, file)
		}
	}
	p, err := s.cfg.Profiles.Resolve(*profile, file)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter sniff: --profile: %v\n", err)
		return ExitUsage
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter sniff: %v\n", err)
		return ExitUsage
	}
	defer f.Close()
	opts := s.cfg.Reader
	opts.Account, opts.Profile = account, p
	sniffed, err := txn.Sniff(f, opts, *rows)
	fmt.Fprintf(s.stdout, "file         %s\n", fs.Arg(0))
	sniffed.Print(s.stdout, fs.Arg(0))
	if err != nil {
		var fe *txn.FileError
		if !errors.As(err, &fe) {
			fmt.Fprintf(s.stderr, "starter sniff: read %s: %v\n", fs.Arg(0), err)
		}
		return ExitRunFailed
	}
	return ExitOK
}
