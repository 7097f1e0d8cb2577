package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.temporal.io/sdk/temporal"
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

// InboxFile is one file waiting in the inbox.
type InboxFile struct {
	File   string // relative to the input root, with forward slashes
	SHA256 string
	Size   int64
}

// ListInbox lists the regular files waiting in <input root>/<Dir>, sorted by name, with their
// hashes. Hidden files (a leading dot, as files still being copied often are) and
// subdirectories are left alone. A missing inbox directory is an empty inbox.
//
// It returns a non-retryable ErrTypeBadPath error when Dir leaves the input root.
func (a *Activities) ListInbox(ctx context.Context, in ListInboxInput) ([]InboxFile, error) {
	defer keepAlive(ctx, nil)()
	dir, rel, err := a.inboxDir(in.Dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []InboxFile
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // moved away meanwhile
			}
			return nil, fmt.Errorf("stat %s: %w", e.Name(), err)
		}
		sum, err := HashFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("hash %s: %w", e.Name(), err)
		}
		out = append(out, InboxFile{File: filepath.ToSlash(filepath.Join(rel, e.Name())), SHA256: sum, Size: st.Size()})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MoveInput names a processed inbox file and where it goes: ArchiveDir or FailedDir.
type MoveInput struct {
	File   string // relative to the input root, as ListInbox returned it
	SHA256 string // its content hash, to recognise it once moved
	To     string // ArchiveDir or FailedDir
}

// MoveInboxFile moves a processed file to <input root>/<To>/ and returns its new path relative
// to the input root. A file of the same name and another content already there is kept: the
// moved file then takes the name <base>-<first 16 hex digits of its hash><ext>. Moving again a
// file already moved returns where it went, so the activity can be retried.
//
// It returns a non-retryable ErrTypeBadPath error when To is not ArchiveDir or FailedDir, when
// the file leaves the input root, or when it is neither in the inbox nor at its destination.
func (a *Activities) MoveInboxFile(ctx context.Context, in MoveInput) (string, error) {
	if in.To != ArchiveDir && in.To != FailedDir {
		err := fmt.Errorf("move %s: destination %q is neither %s nor %s", in.File, in.To, ArchiveDir, FailedDir)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	root, err := filepath.Abs(a.InputRoot)
	if err != nil || a.InputRoot == "" {
		err = fmt.Errorf("input root %q: %w", a.InputRoot, errors.Join(err, errors.New("not configured")))
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	src := filepath.Join(root, filepath.FromSlash(in.File))
	if !within(root, src) || in.File == "" {
		err := fmt.Errorf("%s: %w %s", in.File, ErrOutsideRoot, root)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	destDir := filepath.Join(root, in.To)
	name := filepath.Base(src)
	ext := filepath.Ext(name)
	candidates := []string{name}
	if in.SHA256 != "" {
		short := in.SHA256
		if len(short) > 16 {
			short = short[:16]
		}
		candidates = append(candidates, strings.TrimSuffix(name, ext)+"-"+short+ext)
	}
	rel := func(p string) string { r, _ := filepath.Rel(root, p); return filepath.ToSlash(r) }

	// Already moved by an earlier attempt?
	if _, err := os.Lstat(src); errors.Is(err, os.ErrNotExist) {
		for _, c := range candidates {
			p := filepath.Join(destDir, c)
			if sum, err := HashFile(p); err == nil && sum == in.SHA256 {
				return rel(p), nil
			}
		}
		err := fmt.Errorf("%s is neither in the inbox nor in %s/", in.File, in.To)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	} else if err != nil {
		return "", fmt.Errorf("stat %s: %w", in.File, err)
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s/: %w", in.To, err)
	}
	for i := 0; ; i++ {
		c := ""
		switch {
		case i < len(candidates):
			c = candidates[i]
		default:
			c = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(candidates[len(candidates)-1], ext), i-len(candidates)+2, ext)
		}
		dst := filepath.Join(destDir, c)
		if _, err := os.Lstat(dst); err == nil {
			if sum, err := HashFile(dst); err == nil && sum == in.SHA256 && in.SHA256 != "" {
				// The same content is there already: this copy is redundant.
				if err := os.Remove(src); err != nil && !errors.Is(err, os.ErrNotExist) {
					return "", fmt.Errorf("remove %s: %w", in.File, err)
				}
				return rel(dst), nil
			}
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("stat %s: %w", rel(dst), err)
		}
		// Link then remove, so an existing file is never overwritten (rename would).
		if err := os.Link(src, dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if err := os.Rename(src, dst); err != nil { // file systems without hard links
				return "", fmt.Errorf("move %s to %s: %w", in.File, rel(dst), err)
			}
			return rel(dst), nil
		}
		if err := os.Remove(src); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("remove %s: %w", in.File, err)
		}
		return rel(dst), nil
	}
}

// inboxDir resolves the inbox directory below the input root.
func (a *Activities) inboxDir(dir string) (abs, rel string, err error) {
	if dir == "" {
		dir = "inbox"
	}
	root, err := filepath.Abs(a.InputRoot)
	if err != nil || a.InputRoot == "" {
		err = fmt.Errorf("input root %q: %w", a.InputRoot, errors.Join(err, errors.New("not configured")))
		return "", "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	abs = filepath.Clean(filepath.Join(root, filepath.FromSlash(dir)))
	if filepath.IsAbs(dir) {
		abs = filepath.Clean(dir)
	}
	if !within(root, abs) || abs == root {
		err := fmt.Errorf("inbox %s: %w %s", dir, ErrOutsideRoot, root)
		return "", "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	rel, _ = filepath.Rel(root, abs)
	return abs, rel, nil
}
