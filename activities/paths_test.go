package activities

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
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
	for _, bad := range []string{"", "..", "../x", "a/b", "/abs", ".hidden", "a..b"} {
		_, err := OutputDir(root, bad)
		require.True(t, errors.Is(err, ErrOutsideRoot), bad)
	}
}
