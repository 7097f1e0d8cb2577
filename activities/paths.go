package activities

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"go.temporal.io/sdk/temporal"
)

// Error types of the non-retryable errors of the file steps that are neither bad data nor bad
// paths. They belong in NonRetryableErrorTypes.
const (
	ErrTypeConfig   = "ConfigError"   // the worker's input or output root is not configured or cannot be opened
	ErrTypeBadInput = "BadInputError" // an activity was called with malformed arguments (not a path)
)

// ErrOutsideRoot is returned for a path that leaves its root.
var ErrOutsideRoot = errors.New("path is outside the root")

var (
	errConfig     = errors.New("not usable")
	errNotRegular = errors.New("not a regular file")
	errNoFile     = errors.New("no such file")
)

// Every file txflow reads, moves or writes is opened through an *os.Root: the kernel resolves
// each path component below the root's directory handle and refuses ".." and symbolic links
// that leave it at the moment of the open, so a directory swapped for a link between a check
// and the open cannot escape. The functions below are the only way the activities touch files.

// localPath returns file, given relative to root or as an absolute path below it, as a path
// relative to root. It refuses, with an error wrapping ErrOutsideRoot, a path that leaves the
// root lexically (".." too many, an absolute path elsewhere); symbolic links are left to the
// *os.Root that opens it.
func localPath(root, file string) (string, error) {
	if file == "" {
		return "", fmt.Errorf("no file given: %w", os.ErrNotExist)
	}
	p := filepath.FromSlash(file)
	if filepath.IsAbs(p) {
		absRoot, err := filepath.Abs(root)
		if err != nil {
			return "", fmt.Errorf("root: %w", err)
		}
		rel, err := filepath.Rel(absRoot, p)
		if err != nil || !filepath.IsLocal(rel) {
			// The root may be reached through a link (/tmp on some systems): try its real path.
			if realRoot, err2 := filepath.EvalSymlinks(absRoot); err2 == nil {
				rel, err = filepath.Rel(realRoot, p)
			}
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w %s", file, ErrOutsideRoot, absRoot)
		}
		p = rel
	}
	p = filepath.Clean(p)
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("%s: %w", file, ErrOutsideRoot)
	}
	return p, nil
}

// confined turns the escape error of an *os.Root into one wrapping ErrOutsideRoot.
func confined(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" && errors.Unwrap(e) == nil {
			return fmt.Errorf("%w: %w", err, ErrOutsideRoot)
		}
	}
	return err
}

// openRoot opens the existing directory dir, the what root ("input", "output").
func openRoot(what, dir string) (*os.Root, error) {
	if dir == "" {
		return nil, fmt.Errorf("no %s root configured: %w", what, errConfig)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%s root %s: %w", what, dir, errors.Join(err, errConfig))
	}
	return r, nil
}

// typedError returns err as the non-retryable application error its cause calls for:
// ErrTypeConfig for a root that is not configured or cannot be opened, ErrTypeBadPath for a
// path that leaves its root (and, when input is true, for a file that does not exist, cannot be
// read or is not a regular file), or a file that is nowhere to be found. Any other error is returned as it is, for a retry.
func typedError(err error, input bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errConfig):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeConfig, err)
	case errors.Is(err, ErrOutsideRoot), errors.Is(err, errNoFile),
		input && (errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, errNotRegular)):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	return err
}

// testHookOpened, when set, runs between a path's validation and its use: tests swap a
// directory for a symbolic link there.
var testHookOpened func()

// OpenInput opens file, relative to the input root or absolute below it, for reading, confined
// to the root: "..", an absolute path elsewhere and symbolic links leaving the root (or absolute
// ones) are refused at the open itself. The errors are ready to return from an activity: a
// non-retryable ErrTypeBadPath error for a path outside the root or a file that is missing,
// unreadable or not a regular file, ErrTypeConfig when the root is not configured or cannot be
// opened; other errors are plain, for a retry.
func OpenInput(root, file string) (*os.File, error) {
	f, err := openInput(root, file)
	return f, typedError(err, true)
}

func openInput(root, file string) (*os.File, error) {
	r, err := openRoot("input", root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rel, err := localPath(root, file)
	if err != nil {
		return nil, err
	}
	// Stat first: opening a named pipe would block.
	st, err := r.Stat(rel)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", file, confined(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("input %s: %w", file, errNotRegular)
	}
	if testHookOpened != nil {
		testHookOpened()
	}
	f, err := r.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", file, confined(err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("input %s: %w", file, errors.Join(err, errNotRegular))
	}
	return f, nil
}

// ResolveInput returns the absolute path of file, given relative to root or as an absolute path
// below it, with its symbolic links resolved. It refuses, with an error wrapping ErrOutsideRoot,
// any path that leaves the root, whether through "..", an absolute path elsewhere, or a symbolic
// link pointing outside; and it returns an error wrapping os.ErrNotExist when the file does not
// exist. It is the starter's early check; the worker opens files with OpenInput.
func ResolveInput(root, file string) (string, error) {
	if root == "" {
		return "", errors.New("no input root configured")
	}
	rel, err := localPath(root, file)
	if err != nil {
		return "", err
	}
	realRoot, err := realPath(root)
	if err != nil {
		return "", fmt.Errorf("input root: %w", err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(realRoot, rel))
	if err != nil {
		return "", fmt.Errorf("input %s: %w", file, err)
	}
	if r, err := filepath.Rel(realRoot, real); err != nil || !filepath.IsLocal(r) {
		return "", fmt.Errorf("%s: %w %s (it links to %s)", file, ErrOutsideRoot, root, real)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("input %s: %w", file, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("input %s is %w", file, errNotRegular)
	}
	return real, nil
}

// RelativeInput returns file relative to root, its links resolved, refusing paths that leave
// it, as ResolveInput does.
func RelativeInput(root, file string) (string, error) {
	abs, err := ResolveInput(root, file)
	if err != nil {
		return "", err
	}
	realRoot, err := realPath(root)
	if err != nil {
		return "", fmt.Errorf("input root: %w", err)
	}
	return filepath.Rel(realRoot, abs)
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// runIDPattern matches the run ids workflows.RunID makes, whatever the account (its characters
// are letters, digits, '-', '_', '.' and ':'): one directory name, never "." or "..", since it
// starts with a letter or digit and has no separator.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$`)

// OutputDir returns <root>/<runID>, refusing a run id that is not a plain directory name.
func OutputDir(root, runID string) (string, error) {
	if root == "" {
		return "", fmt.Errorf("no output root configured: %w", errConfig)
	}
	if !runIDPattern.MatchString(runID) {
		return "", fmt.Errorf("run id %q: %w", runID, ErrOutsideRoot)
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("output root: %w", err)
	}
	return filepath.Join(absRoot, runID), nil
}

// HashFile returns the hex SHA-256 of the file's content.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, _, err := hashOpen(f)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return sum, nil
}

// hashIn returns the hex SHA-256 and the size of the regular file name of r.
func hashIn(r *os.Root, name string) (sum string, size int64, err error) {
	st, err := r.Lstat(name)
	if err != nil {
		return "", 0, confined(err)
	}
	if !st.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	f, err := r.Open(name)
	if err != nil {
		return "", 0, confined(err)
	}
	defer f.Close()
	return hashOpen(f)
}

func hashOpen(f *os.File) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// syncDir flushes the directory name of r (a rename in it, a file created or removed) to disk.
func syncDir(r *os.Root, name string) error {
	d, err := r.Open(name)
	if err != nil {
		return confined(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", name, err)
	}
	return nil
}

// fileWriters are the buffers of writeFileAtomic, 1 MiB each: kept for the next file rather
// than allocated and cleared for every one (a small run writes five or six files).
var fileWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1<<20) }}

// writeFileAtomic writes name in the directory dir through a temporary file in the same
// directory, written, synced and renamed into place, then syncs the directory: readers never
// see a partial file, even when the worker dies mid-write, and the rename survives a crash.
// It is the one way txflow writes a file.
func writeFileAtomic(dir *os.Root, name string, write func(io.Writer) (int64, error)) (n int64, err error) {
	tmpName := "." + name + "." + strings.ToLower(rand.Text()[:12]) + ".tmp"
	tmp, err := dir.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, confined(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			dir.Remove(tmpName)
		}
	}()
	bw := fileWriters.Get().(*bufio.Writer)
	bw.Reset(tmp)
	defer func() {
		bw.Reset(nil)
		fileWriters.Put(bw)
	}()
	if n, err = write(bw); err != nil {
		return 0, err
	}
	if err = bw.Flush(); err != nil {
		return 0, err
	}
	if err = tmp.Chmod(0o644); err != nil { // whatever the umask
		return 0, err
	}
	if err = tmp.Sync(); err != nil {
		return 0, err
	}
	if err = tmp.Close(); err != nil {
		return 0, err
	}
	if err = dir.Rename(tmpName, name); err != nil {
		return 0, confined(err)
	}
	return n, syncDir(dir, ".")
}

// writeBytes writes b as name in dir with writeFileAtomic.
func writeBytes(dir *os.Root, name string, b []byte) error {
	_, err := writeFileAtomic(dir, name, func(w io.Writer) (int64, error) {
		n, err := w.Write(b)
		return int64(n), err
	})
	return err
}
