package activities

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrOutsideRoot is returned for a path that leaves its root.
var ErrOutsideRoot = errors.New("path is outside the root")

// ResolveInput returns the absolute path of file, given relative to root or as an absolute path
// below it. It refuses, with an error wrapping ErrOutsideRoot, any path that leaves the root,
// whether through "..", an absolute path elsewhere, or a symbolic link pointing outside; and it
// returns an error wrapping os.ErrNotExist when the file does not exist.
func ResolveInput(root, file string) (string, error) {
	if file == "" {
		return "", errors.New("no input file given")
	}
	if root == "" {
		return "", errors.New("no input root configured")
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("input root: %w", err)
	}
	p := file
	if !filepath.IsAbs(p) {
		p = filepath.Join(absRoot, p)
	}
	p = filepath.Clean(p)
	if !within(absRoot, p) {
		return "", fmt.Errorf("%s: %w %s", file, ErrOutsideRoot, absRoot)
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return "", fmt.Errorf("input root: %w", err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("input %s: %w", file, err)
	}
	if !within(realRoot, real) {
		return "", fmt.Errorf("%s: %w %s (it links to %s)", file, ErrOutsideRoot, absRoot, real)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("input %s: %w", file, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("input %s is not a regular file", file)
	}
	return real, nil
}

// RelativeInput returns file relative to root, refusing paths that leave it, as ResolveInput does.
func RelativeInput(root, file string) (string, error) {
	abs, err := ResolveInput(root, file)
	if err != nil {
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("input root: %w", err)
	}
	realRoot, err = filepath.Abs(realRoot)
	if err != nil {
		return "", fmt.Errorf("input root: %w", err)
	}
	return filepath.Rel(realRoot, abs)
}

var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// OutputDir returns <root>/<runID>, refusing a run id that is not a plain directory name.
func OutputDir(root, runID string) (string, error) {
	if root == "" {
		return "", errors.New("no output root configured")
	}
	if !runIDPattern.MatchString(runID) || strings.Contains(runID, "..") {
		return "", fmt.Errorf("run id %q: %w", runID, ErrOutsideRoot)
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("output root: %w", err)
	}
	return filepath.Join(absRoot, runID), nil
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// HashFile returns the hex SHA-256 of the file's content.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
