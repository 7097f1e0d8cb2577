package activities

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// moveEnv runs MoveInboxFile through Temporal's activity test environment.
type moveEnv struct {
	t    *testing.T
	root string
	env  *testsuite.TestActivityEnvironment
	a    *Activities
}

func newMoveEnv(t *testing.T) *moveEnv {
	var s testsuite.WorkflowTestSuite
	m := &moveEnv{t: t, root: t.TempDir(), env: s.NewTestActivityEnvironment()}
	m.a = &Activities{InputRoot: m.root}
	m.env.RegisterActivity(m.a)
	return m
}

// put writes content at rel under the input root and returns its hash.
func (m *moveEnv) put(rel, content string) string {
	m.t.Helper()
	p := filepath.Join(m.root, rel)
	require.NoError(m.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(m.t, os.WriteFile(p, []byte(content), 0o644))
	sum, err := HashFile(p)
	require.NoError(m.t, err)
	return sum
}

func (m *moveEnv) move(in MoveInput) (string, error) {
	m.t.Helper()
	v, err := m.env.ExecuteActivity(m.a.MoveInboxFile, in)
	if err != nil {
		return "", err
	}
	var got string
	require.NoError(m.t, v.Get(&got))
	return got, nil
}

func (m *moveEnv) content(rel string) string {
	m.t.Helper()
	return read(m.t, filepath.Join(m.root, rel))
}

// TestMoveInboxFileNameTaken moves files whose name is already taken at the destination by
// another content: the file there is kept, the moved one takes the name with its hash, then a
// counter; a retry finds where it went.
func TestMoveInboxFileNameTaken(t *testing.T) {
	m := newMoveEnv(t)
	m.put("archive/may.csv", "the file archived last month")
	sum := m.put("inbox/may.csv", "this month's file")
	short := sum[:16]

	got, err := m.move(MoveInput{File: "inbox/may.csv", SHA256: sum, To: ArchiveDir})
	require.NoError(t, err)
	require.Equal(t, "archive/may-"+short+".csv", got)
	require.Equal(t, "this month's file", m.content(got))
	require.Equal(t, "the file archived last month", m.content("archive/may.csv"), "never overwritten")
	require.NoFileExists(t, filepath.Join(m.root, "inbox", "may.csv"))

	// The retry of that move (the activity's result was lost) returns where the file went.
	again, err := m.move(MoveInput{File: "inbox/may.csv", SHA256: sum, To: ArchiveDir})
	require.NoError(t, err)
	require.Equal(t, got, again)

	// Both names taken by other contents: a counter is added.
	m.put("failed/june.csv", "one")
	sum = m.put("inbox/june.csv", "three")
	m.put("failed/june-"+sum[:16]+".csv", "two")
	got, err = m.move(MoveInput{File: "inbox/june.csv", SHA256: sum, To: FailedDir})
	require.NoError(t, err)
	require.Equal(t, "failed/june-"+sum[:16]+"-2.csv", got)
	require.Equal(t, "three", m.content(got))
	require.Equal(t, "one", m.content("failed/june.csv"))
	require.Equal(t, "two", m.content("failed/june-"+sum[:16]+".csv"))

	// A name without extension.
	m.put("archive/README", "old")
	sum = m.put("inbox/README", "new")
	got, err = m.move(MoveInput{File: "inbox/README", SHA256: sum, To: ArchiveDir})
	require.NoError(t, err)
	require.Equal(t, "archive/README-"+sum[:16], got)
}

// TestMoveInboxFileSameContentThere moves a file whose very content is already at the
// destination under its name: the inbox copy is removed and the file there is returned.
func TestMoveInboxFileSameContentThere(t *testing.T) {
	m := newMoveEnv(t)
	m.put("archive/a.csv", "same")
	sum := m.put("inbox/a.csv", "same")
	got, err := m.move(MoveInput{File: "inbox/a.csv", SHA256: sum, To: ArchiveDir})
	require.NoError(t, err)
	require.Equal(t, "archive/a.csv", got)
	require.NoFileExists(t, filepath.Join(m.root, "inbox", "a.csv"))
	entries, err := os.ReadDir(filepath.Join(m.root, ArchiveDir))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no second copy")

	// Without a hash to recognise it by, the same content is moved beside it under a new name.
	m.put("inbox/b.csv", "same")
	m.put("archive/b.csv", "same")
	got, err = m.move(MoveInput{File: "inbox/b.csv", To: ArchiveDir})
	require.NoError(t, err)
	require.Equal(t, "archive/b-2.csv", got)
	require.Equal(t, "same", m.content("archive/b.csv"))
}

// TestMoveInboxFileRetryNeedsTheSameContent checks that a retry whose file is gone from the inbox
// does not claim a file of another content that has its name at the destination.
func TestMoveInboxFileRetryNeedsTheSameContent(t *testing.T) {
	m := newMoveEnv(t)
	m.put("archive/c.csv", "someone else's")
	sum := m.put("elsewhere/c.csv", "mine")
	_, err := m.move(MoveInput{File: "inbox/c.csv", SHA256: sum, To: ArchiveDir})
	requireErrorType(t, err, ErrTypeBadPath)
	require.ErrorContains(t, err, "neither in the inbox nor in archive/")
}
