package activities

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

func TestResolveInput(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "inbox"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "inbox", "a.csv"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("x"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(root, "escape.csv")))
	require.NoError(t, os.Symlink(filepath.Join(root, "inbox", "a.csv"), filepath.Join(root, "inside.csv")))

	for _, tc := range []struct {
		name, file string
		want       string // relative to root, when accepted
		outside    bool
		missing    bool
	}{
		{name: "relative", file: "inbox/a.csv", want: "inbox/a.csv"},
		{name: "absolute below root", file: filepath.Join(root, "inbox", "a.csv"), want: "inbox/a.csv"},
		{name: "dot dot inside", file: "inbox/../inbox/a.csv", want: "inbox/a.csv"},
		{name: "link inside root", file: "inside.csv", want: "inbox/a.csv"},
		{name: "dot dot escape", file: "../" + filepath.Base(outside) + "/secret.csv", outside: true},
		{name: "absolute elsewhere", file: filepath.Join(outside, "secret.csv"), outside: true},
		{name: "link escaping root", file: "escape.csv", outside: true},
		{name: "missing", file: "nope.csv", missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveInput(root, tc.file)
			switch {
			case tc.outside:
				require.ErrorIs(t, err, ErrOutsideRoot)
			case tc.missing:
				require.ErrorIs(t, err, os.ErrNotExist)
			default:
				require.NoError(t, err)
				realRoot, _ := filepath.EvalSymlinks(root)
				require.Equal(t, filepath.Join(realRoot, tc.want), got)
				rel, err := RelativeInput(root, tc.file)
				require.NoError(t, err)
				require.Equal(t, tc.want, rel)
			}
		})
	}
}

func TestOutputDir(t *testing.T) {
	root := t.TempDir()
	got, err := OutputDir(root, "txflow-0123abcd")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "txflow-0123abcd"), got)
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/abs", ".hidden", "a\\b", "a b"} {
		_, err := OutputDir(root, bad)
		require.True(t, errors.Is(err, ErrOutsideRoot), bad)
	}
	// The run ids of accounts: ':' (an IBAN) and '..' inside an account are one directory name.
	for _, good := range []string{"txflow-FR76:3000_6-0123abcd", "txflow-a..b-0123abcd", "txflow-..-0123abcd"} {
		got, err := OutputDir(root, good)
		require.NoError(t, err, good)
		require.Equal(t, filepath.Join(root, good), got)
	}
}

// swapForLink replaces the directory dir by a symbolic link to target, keeping the directory
// aside as dir+".real".
func swapForLink(t *testing.T, dir, target string) {
	t.Helper()
	require.NoError(t, os.Rename(dir, dir+".real"))
	require.NoError(t, os.Symlink(target, dir))
}

// onOpened sets the hook run between a path's validation and its use for the test.
func onOpened(t *testing.T, f func()) {
	testHookOpened = f
	t.Cleanup(func() { testHookOpened = nil })
}

func requireErrorType(t *testing.T, err error, typ string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, typ, appErr.Type(), "%v", err)
	require.True(t, appErr.NonRetryable())
}

func TestOpenInputConfined(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "inbox"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "inbox", "a.csv"), []byte("inside"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "a.csv"), []byte("SECRET"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "a.csv"), filepath.Join(root, "escape.csv")))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "linked")))
	require.NoError(t, os.Symlink("inbox/a.csv", filepath.Join(root, "relative.csv")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "pipe.csv"), 0o644))

	read := func(file string) (string, error) {
		f, err := OpenInput(root, file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return string(b), err
	}
	for _, file := range []string{"inbox/a.csv", filepath.Join(root, "inbox", "a.csv"), "relative.csv", "inbox/../inbox/a.csv"} {
		got, err := read(file)
		require.NoError(t, err, file)
		require.Equal(t, "inside", got, file)
	}
	for _, file := range []string{"escape.csv", "linked/a.csv", "../" + filepath.Base(outside) + "/a.csv", filepath.Join(outside, "a.csv")} {
		got, err := read(file)
		require.ErrorIs(t, err, ErrOutsideRoot, file)
		requireErrorType(t, err, ErrTypeBadPath)
		require.Empty(t, got)
	}
	for _, file := range []string{"nope.csv", "inbox", "pipe.csv", ""} {
		_, err := read(file)
		requireErrorType(t, err, ErrTypeBadPath)
	}
	_, err := OpenInput(filepath.Join(root, "no-such-root"), "a.csv")
	requireErrorType(t, err, ErrTypeConfig)
	_, err = OpenInput("", "a.csv")
	requireErrorType(t, err, ErrTypeConfig)

	// The inbox directory is swapped for a link to the outside after the path was checked:
	// the open itself refuses it.
	onOpened(t, func() { swapForLink(t, filepath.Join(root, "inbox"), outside) })
	got, err := read("inbox/a.csv")
	require.ErrorIs(t, err, ErrOutsideRoot)
	require.Empty(t, got)
}

func TestMoveInboxFileConfined(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	a := &Activities{InputRoot: root}
	put := func(name string) string {
		require.NoError(t, os.MkdirAll(filepath.Join(root, "inbox"), 0o755))
		p := filepath.Join(root, "inbox", name)
		require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
		sum, err := HashFile(p)
		require.NoError(t, err)
		return sum
	}
	requireOutsideEmpty := func() {
		entries, err := os.ReadDir(outside)
		require.NoError(t, err)
		require.Empty(t, entries)
	}

	// A destination that is a link to the outside.
	require.NoError(t, os.Symlink(outside, filepath.Join(root, ArchiveDir)))
	sum := put("a.csv")
	_, err := a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/a.csv", SHA256: sum, To: ArchiveDir})
	require.ErrorIs(t, err, ErrOutsideRoot)
	requireErrorType(t, err, ErrTypeBadPath)
	require.FileExists(t, filepath.Join(root, "inbox", "a.csv"))
	requireOutsideEmpty()

	// A destination swapped for a link after it was created.
	onOpened(t, func() { swapForLink(t, filepath.Join(root, FailedDir), outside) })
	_, err = a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/a.csv", SHA256: sum, To: FailedDir})
	require.ErrorIs(t, err, ErrOutsideRoot)
	require.FileExists(t, filepath.Join(root, "inbox", "a.csv"))
	requireOutsideEmpty()
	testHookOpened = nil

	// A source outside, and a bad destination.
	_, err = a.MoveInboxFile(context.Background(), MoveInput{File: "../" + filepath.Base(outside) + "/x.csv", To: FailedDir})
	requireErrorType(t, err, ErrTypeBadPath)
	_, err = a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/a.csv", To: "elsewhere"})
	requireErrorType(t, err, ErrTypeBadInput)

	// A plain move, then the same move again (a retried activity).
	require.NoError(t, os.Remove(filepath.Join(root, FailedDir)))
	got, err := a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/a.csv", SHA256: sum, To: FailedDir})
	require.NoError(t, err)
	require.Equal(t, "failed/a.csv", got)
	got, err = a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/a.csv", SHA256: sum, To: FailedDir})
	require.NoError(t, err)
	require.Equal(t, "failed/a.csv", got)
	_, err = a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/gone.csv", SHA256: sum, To: FailedDir})
	requireErrorType(t, err, ErrTypeBadPath)
}

func TestListInboxConfined(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("SECRET"), 0o644))
	a := &Activities{InputRoot: root}
	// A missing inbox (or a mistyped --dir) is an error naming it, not an empty inbox.
	_, err := a.ListInbox(context.Background(), ListInboxInput{Dir: "inbxo"})
	requireErrorType(t, err, ErrTypeBadPath)
	require.ErrorContains(t, err, "directory inbxo does not exist under the input root "+root)
	_, err = a.ListInbox(context.Background(), ListInboxInput{})
	requireErrorType(t, err, ErrTypeBadPath)
	require.ErrorContains(t, err, "directory inbox does not exist")
	require.NoError(t, os.Mkdir(filepath.Join(root, "inbox"), 0o755))
	files, err := a.ListInbox(context.Background(), ListInboxInput{})
	require.NoError(t, err)
	require.Empty(t, files, "an empty inbox")
	require.NoError(t, os.Remove(filepath.Join(root, "inbox")))

	require.NoError(t, os.Symlink(outside, filepath.Join(root, "inbox")))
	_, err = a.ListInbox(context.Background(), ListInboxInput{})
	require.ErrorIs(t, err, ErrOutsideRoot)
	requireErrorType(t, err, ErrTypeBadPath)
	for _, dir := range []string{".", "..", outside} {
		_, err = a.ListInbox(context.Background(), ListInboxInput{Dir: dir})
		requireErrorType(t, err, ErrTypeBadPath)
	}

	// Links in the inbox are left alone, wherever they point.
	require.NoError(t, os.Remove(filepath.Join(root, "inbox")))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "inbox"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "inbox", "b.csv"), []byte("b"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(root, "inbox", "a.csv")))
	files, err = a.ListInbox(context.Background(), ListInboxInput{})
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.Equal(t, "inbox/b.csv", files[0].File)
	require.EqualValues(t, 1, files[0].Size)

	_, err = (&Activities{InputRoot: filepath.Join(root, "missing")}).ListInbox(context.Background(), ListInboxInput{})
	requireErrorType(t, err, ErrTypeConfig)
	_, err = (&Activities{}).MoveInboxFile(context.Background(), MoveInput{File: "inbox/b.csv", To: ArchiveDir})
	requireErrorType(t, err, ErrTypeConfig)
}

func TestRunDirConfined(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	requireOutsideEmpty := func() {
		entries, err := os.ReadDir(outside)
		require.NoError(t, err)
		require.Empty(t, entries)
	}
	// A run directory that is a link to the outside.
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "txflow-linked")))
	_, err := OpenRunDir(root, "txflow-linked")
	require.ErrorIs(t, err, ErrOutsideRoot)
	requireErrorType(t, err, ErrTypeBadPath)

	// A run directory swapped for a link after it was created.
	onOpened(t, func() { swapForLink(t, filepath.Join(root, "txflow-swapped"), outside) })
	_, err = OpenRunDir(root, "txflow-swapped")
	require.ErrorIs(t, err, ErrOutsideRoot)
	testHookOpened = nil

	// Swapped after it was opened: the files go to the directory opened, not the link.
	d, err := OpenRunDir(root, "txflow-late")
	require.NoError(t, err)
	swapForLink(t, filepath.Join(root, "txflow-late"), outside)
	require.NoError(t, writeBytes(d.Root, SummaryFile, []byte("{}\n")))
	require.NoError(t, d.Close())
	require.FileExists(t, filepath.Join(root, "txflow-late.real", SummaryFile))
	requireOutsideEmpty()

	_, err = OpenRunDir("", "txflow-x")
	requireErrorType(t, err, ErrTypeConfig)
}
