package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/txn"
)

// Directories of the input root the inbox moves processed files to.
const (
	ArchiveDir = "archive" // files whose run completed
	FailedDir  = "failed"  // files whose run failed
)

// ListInboxInput names the inbox directory, relative to the input root.
type ListInboxInput struct {
	Dir string
}

// InboxFile is one file waiting in the inbox, or a sub-folder of the inbox refused (Error).
type InboxFile struct {
	File   string // relative to the input root, with forward slashes
	SHA256 string
	Size   int64
	// Account is the account of a file in a sub-folder of the inbox: the sub-folder's name. It
	// is "" for a file directly in the inbox, whose run has the default account.
	Account string `json:",omitempty"`
	// Profile is the mapping profile named by the settings file of the file's folder
	// (FolderSettingsFile: "profile: NAME"), "" when it has none.
	Profile string `json:",omitempty"`
	// Error is set, and File names a sub-folder, for a sub-folder whose name is not a valid
	// account, or whose settings file cannot be read: its files are not processed, and the inbox
	// run reports it.
	Error string `json:",omitempty"`
}

// ListInbox lists the regular files waiting in <input root>/<Dir>, sorted by path, with their
// hashes: those directly in it, of the default account, and those in its sub-folders named after
// an account (txn.ParseAccount), of that account: inbox/acme/x.csv is a file of account acme.
// A sub-folder whose name is not a valid account is listed as an InboxFile with an Error, so
// that the inbox run reports it instead of leaving its files unseen. Hidden files and folders
// (a leading dot, as files still being copied often are), symbolic links and folders below the
// account sub-folders are left alone. A folder's settings file (FolderSettingsFile, hidden) names
// the mapping profile of its files (InboxFile.Profile); one that cannot be read refuses its
// folder as an InboxFile with an Error, or fails the listing (ErrTypeBadInput) for the inbox itself.
//
// It returns a non-retryable ErrTypeBadPath error when Dir leaves the input root or does not
// exist (its message names the directory), and
// ErrTypeConfig when the input root is not configured or cannot be opened.
func (a *Activities) ListInbox(ctx context.Context, in ListInboxInput) ([]InboxFile, error) {
	defer keepAlive(ctx, nil)()
	root, rel, err := a.inboxDir(in.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, err := root.Open(rel)
	if errors.Is(err, os.ErrNotExist) {
		// A mistyped --dir, or an inbox never created, would otherwise look like an empty inbox
		// forever.
		err = fmt.Errorf("list inbox: directory %s does not exist under the input root %s (create it: mkdir -p %s): %w",
			filepath.ToSlash(rel), a.InputRoot, filepath.Join(a.InputRoot, rel), errNoFile)
		return nil, typedError(err, false)
	}
	if err != nil {
		return nil, typedError(fmt.Errorf("list inbox: %w", confined(err)), false)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	var out []InboxFile
	var add func(dir, account, profile string, entries []os.DirEntry) error
	add = func(dir, account, profile string, entries []os.DirEntry) error {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if e.IsDir() && account == "" {
				acc, err := txn.ParseAccount(e.Name())
				if err == nil && acc != e.Name() {
					err = fmt.Errorf("account %q has surrounding spaces", e.Name())
				}
				if err != nil {
					msg := fmt.Sprintf("sub-folder %s/ of the inbox is not named after a valid account, its files are not processed (rename it or move them): %v",
						filepath.ToSlash(p), err)
					if activity.IsActivity(ctx) {
						activity.GetLogger(ctx).Warn("inbox sub-folder refused", "dir", filepath.ToSlash(p), "error", err)
					}
					out = append(out, InboxFile{File: filepath.ToSlash(p), Error: msg})
					continue
				}
				sub, err := readDir(root, p)
				if errors.Is(err, os.ErrNotExist) {
					continue // removed meanwhile
				}
				if err != nil {
					return err
				}
				subProfile, err := folderProfile(root, p)
				if err != nil {
					out = append(out, InboxFile{File: filepath.ToSlash(p), Error: fmt.Sprintf(
						"sub-folder %s/ of the inbox has settings that cannot be read, its files are not processed: %v", filepath.ToSlash(p), err)})
					continue
				}
				if err := add(p, acc, subProfile, sub); err != nil {
					return err
				}
				continue
			}
			if !e.Type().IsRegular() {
				continue
			}
			sum, size, err := hashIn(root, p)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) || errors.Is(err, errNotRegular) {
					continue // moved away or replaced meanwhile
				}
				return fmt.Errorf("hash %s: %w", filepath.ToSlash(p), err)
			}
			out = append(out, InboxFile{File: filepath.ToSlash(p), SHA256: sum, Size: size, Account: account, Profile: profile})
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	profile, err := folderProfile(root, rel)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("list inbox: "+err.Error(), ErrTypeBadInput, err)
	}
	if err := add(rel, "", profile, entries); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// readDir lists the directory dir of root.
func readDir(root *os.Root, dir string) ([]os.DirEntry, error) {
	d, err := root.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", confined(err))
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	return entries, nil
}

// MoveInput names a processed inbox file and where it goes: ArchiveDir or FailedDir, in the
// sub-folder of its account when it was in one of the inbox.
type MoveInput struct {
	File   string // relative to the input root, as ListInbox returned it
	SHA256 string // its content hash, to recognise it once moved
	To     string // ArchiveDir or FailedDir
	// Account is the file's InboxFile.Account: "" for a file directly in the inbox, moved to
	// <To>/; otherwise the file goes to <To>/<Account>/.
	Account string `json:",omitempty"`
}

// MoveInboxFile moves a processed file to <input root>/<To>/ (<To>/<Account>/ for a file of an
// account's sub-folder) and returns its new path relative to the input root. A file of the same name and another content already there is kept: the
// moved file then takes the name <base>-<first 16 hex digits of its hash><ext>. Moving again a
// file already moved returns where it went, so the activity can be retried. Both directories
// are synced once the file has moved.
//
// It returns a non-retryable ErrTypeBadInput error when To is not ArchiveDir or FailedDir or
// Account is not a valid account,
// ErrTypeBadPath when the file or its destination leaves the input root or the file is neither
// in the inbox nor at its destination, and ErrTypeConfig when the input root is not configured
// or cannot be opened.
func (a *Activities) MoveInboxFile(ctx context.Context, in MoveInput) (string, error) {
	if in.To != ArchiveDir && in.To != FailedDir {
		err := fmt.Errorf("move %s: destination %q is neither %s nor %s", in.File, in.To, ArchiveDir, FailedDir)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
	}
	to := in.To
	if in.Account != "" {
		// ListInbox never takes a hidden folder for an account: "." and "..", valid accounts,
		// would not name a sub-folder.
		if acc, err := txn.ParseAccount(in.Account); err != nil || acc != in.Account || strings.HasPrefix(acc, ".") {
			err := fmt.Errorf("move %s: account %q does not name an account sub-folder", in.File, in.Account)
			return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
		}
		to = filepath.Join(in.To, in.Account)
	}
	root, err := openRoot("input", a.InputRoot)
	if err != nil {
		return "", typedError(err, false)
	}
	defer root.Close()
	src, err := localPath(a.InputRoot, in.File)
	if err == nil && src == "." {
		err = fmt.Errorf("%s: %w", in.File, ErrOutsideRoot)
	}
	if err != nil {
		return "", typedError(err, false)
	}
	moved, err := moveFile(root, src, to, in.SHA256)
	if err != nil {
		return "", typedError(fmt.Errorf("move %s to %s/: %w", in.File, filepath.ToSlash(to), err), false)
	}
	return moved, nil
}

// moveFile moves src to the directory to of root, as MoveInboxFile describes.
func moveFile(root *os.Root, src, to, sha string) (string, error) {
	name := filepath.Base(src)
	ext := filepath.Ext(name)
	candidates := []string{name}
	if sha != "" {
		short := sha
		if len(short) > 16 {
			short = short[:16]
		}
		candidates = append(candidates, strings.TrimSuffix(name, ext)+"-"+short+ext)
	}

	// Already moved by an earlier attempt?
	if _, err := root.Lstat(src); errors.Is(err, os.ErrNotExist) {
		for _, c := range candidates {
			p := filepath.Join(to, c)
			if sum, _, err := hashIn(root, p); err == nil && sum == sha {
				return filepath.ToSlash(p), nil
			}
		}
		return "", fmt.Errorf("neither in the inbox nor in %s/: %w", to, errNoFile)
	} else if err != nil {
		return "", confined(err)
	}
	if err := root.MkdirAll(to, 0o755); err != nil {
		return "", confined(err)
	}
	if testHookOpened != nil {
		testHookOpened()
	}
	done := func(dst string) (string, error) {
		if err := syncDir(root, to); err != nil {
			return "", err
		}
		if err := syncDir(root, filepath.Dir(src)); err != nil {
			return "", err
		}
		return filepath.ToSlash(dst), nil
	}
	for i := 0; ; i++ {
		c := ""
		switch {
		case i < len(candidates):
			c = candidates[i]
		default:
			c = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(candidates[len(candidates)-1], ext), i-len(candidates)+2, ext)
		}
		dst := filepath.Join(to, c)
		if _, err := root.Lstat(dst); err == nil {
			if sum, _, err := hashIn(root, dst); err == nil && sum == sha && sha != "" {
				// The same content is there already: this copy is redundant.
				if err := root.Remove(src); err != nil && !errors.Is(err, os.ErrNotExist) {
					return "", confined(err)
				}
				return done(dst)
			}
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", confined(err)
		}
		// Link then remove, so an existing file is never overwritten (rename would).
		if err := root.Link(src, dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if err := confined(err); errors.Is(err, ErrOutsideRoot) {
				return "", err
			}
			if err := root.Rename(src, dst); err != nil { // file systems without hard links
				return "", confined(err)
			}
			return done(dst)
		}
		if err := root.Remove(src); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", confined(err)
		}
		return done(dst)
	}
}

// inboxDir opens the input root and returns the inbox directory relative to it.
func (a *Activities) inboxDir(dir string) (*os.Root, string, error) {
	if dir == "" {
		dir = "inbox"
	}
	rel, err := localPath(a.InputRoot, dir)
	if err == nil && rel == "." {
		err = fmt.Errorf("inbox %s is the input root itself: %w", dir, ErrOutsideRoot)
	}
	if err != nil {
		return nil, "", typedError(fmt.Errorf("inbox: %w", err), false)
	}
	root, err := openRoot("input", a.InputRoot)
	if err != nil {
		return nil, "", typedError(err, false)
	}
	return root, rel, nil
}

// WaitRunInput names the run whose end to wait for.
type WaitRunInput struct {
	RunID string // the workflow id
}

// RunOutcome is how a run ended.
type RunOutcome struct {
	Completed bool
	Error     string // why it did not complete
}

// WaitForRun waits for the latest run of the workflow RunID to end, heartbeating meanwhile, and
// says whether it completed. A run that already ended returns at once. The inbox calls it for a
// file whose run was started by someone else (another inbox run, the starter): the file is
// archived or failed by that run's outcome, never while it is still being processed.
func (a *Activities) WaitForRun(ctx context.Context, in WaitRunInput) (RunOutcome, error) {
	defer keepAlive(ctx, nil)()
	err := activity.GetClient(ctx).GetWorkflow(ctx, in.RunID, "").Get(ctx, nil)
	var ended *temporal.WorkflowExecutionError
	switch {
	case err == nil:
		return RunOutcome{Completed: true}, nil
	case errors.As(err, &ended):
		msg := ended.Error()
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			msg = appErr.Message()
		} else if cause := errors.Unwrap(ended); cause != nil {
			msg = cause.Error() // terminated, canceled, timed out
		}
		return RunOutcome{Error: msg}, nil
	}
	return RunOutcome{}, fmt.Errorf("wait for run %s: %w", in.RunID, err)
}
