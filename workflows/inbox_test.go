package workflows

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

func newInboxEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(ProcessInbox)
	env.RegisterWorkflow(ProcessFile)
	env.RegisterActivity(&activities.Activities{})
	return env
}

// moves records the MoveInboxFile calls of a test.
type moves struct {
	mu sync.Mutex
	to map[string]string
}

func (m *moves) record(_ context.Context, in activities.MoveInput) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.to[in.File] = in.To
	return in.To + "/x", nil
}

// Two files of the same content: the second one's child cannot start while the first one's
// runs. It is filed by how that run ends, never archived while it is still open.
func TestInboxWaitsForARunAlreadyOpen(t *testing.T) {
	for _, tc := range []struct {
		name      string
		completed bool
		want      string
	}{
		{"open run fails", false, activities.FailedDir},
		{"open run completes", true, activities.ArchiveDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newInboxEnv(t)
			const sum = "0123456789abcdef0123456789abcdef"
			env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
				{File: "inbox/a.csv", SHA256: sum}, {File: "inbox/b.csv", SHA256: sum},
			}, nil)
			var childErr error
			if !tc.completed {
				childErr = temporal.NewNonRetryableApplicationError("tag failed: boom", ErrTypeStageFailed, nil)
			}
			env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).After(time.Hour).Return(&Summary{}, childErr).Once()
			waited := 0
			env.OnActivity(a.WaitForRun, mock.Anything, activities.WaitRunInput{RunID: RunID("", sum)}).Return(
				func(context.Context, activities.WaitRunInput) (activities.RunOutcome, error) {
					waited++
					if tc.completed {
						return activities.RunOutcome{Completed: true}, nil
					}
					return activities.RunOutcome{Error: "tag failed: boom"}, nil
				})
			m := &moves{to: map[string]string{}}
			env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(m.record)

			env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{MaxFiles: 2})
			require.True(t, env.IsWorkflowCompleted())
			res := inboxResult(t, env, !tc.completed)
			require.Equal(t, 1, waited, "the file whose run was open waits for it")
			require.Equal(t, map[string]string{"inbox/a.csv": tc.want, "inbox/b.csv": tc.want}, m.to)
			for _, f := range res.Files {
				if tc.completed {
					require.Equal(t, InboxArchived, f.Outcome, f.File)
				} else {
					require.Equal(t, InboxFailed, f.Outcome, f.File)
					require.Contains(t, f.Error, "tag failed: boom", f.File)
				}
			}
		})
	}
}

// A run found completed before is archived; when how the run ended cannot be learnt, the file
// stays in the inbox, and the inbox run fails saying so.
func TestInboxFilesARunStartedElsewhere(t *testing.T) {
	env := newInboxEnv(t)
	const done, unknown = "aaaaaaaaaaaaaaaa0000", "bbbbbbbbbbbbbbbb0000"
	env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
		{File: "inbox/first.csv", SHA256: done}, {File: "inbox/again.csv", SHA256: done},
		{File: "inbox/lost.csv", SHA256: unknown}, {File: "inbox/lost-again.csv", SHA256: unknown},
	}, nil)
	env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(&Summary{}, nil)
	env.OnActivity(a.WaitForRun, mock.Anything, activities.WaitRunInput{RunID: RunID("", done)}).
		Return(activities.RunOutcome{Completed: true}, nil).Once()
	env.OnActivity(a.WaitForRun, mock.Anything, activities.WaitRunInput{RunID: RunID("", unknown)}).
		Return(activities.RunOutcome{}, temporal.NewNonRetryableApplicationError("not found", "NotFound", errors.New("not found"))).Once()
	m := &moves{to: map[string]string{}}
	env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(m.record)

	env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{MaxFiles: 1})
	res := inboxResult(t, env, true)
	require.Equal(t, map[string]string{
		"inbox/first.csv": activities.ArchiveDir, "inbox/again.csv": activities.ArchiveDir, "inbox/lost.csv": activities.ArchiveDir,
	}, m.to, "lost-again.csv is not moved")
	require.Equal(t, InboxLeft, res.Files[3].Outcome)
	require.Contains(t, res.Files[3].Error, "not found")
	require.Empty(t, res.Files[3].MovedTo)
	require.Equal(t, InboxTotals{Runs: 1, Archived: 3, Left: 1, Problems: 1,
		ProblemFiles: []string{"inbox/lost-again.csv (left: not found)"}}, res.Totals)
}

// inboxResult returns the result of an inbox run: its value when it completed, the details of
// its error when it failed, as it must when failed says so.
func inboxResult(t *testing.T, env *testsuite.TestWorkflowEnvironment, failed bool) InboxResult {
	t.Helper()
	var res InboxResult
	err := env.GetWorkflowError()
	if !failed {
		require.NoError(t, err)
		require.NoError(t, env.GetWorkflowResult(&res))
		return res
	}
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, ErrTypeInboxFilesFailed, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.NoError(t, appErr.Details(&res))
	return res
}

// A failed file fails the inbox run, once every file is filed: red in the Web UI, its error
// naming the file with the counts, its details each file's outcome.
func TestInboxFailsWhenAFileFailed(t *testing.T) {
	env := newInboxEnv(t)
	env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
		{File: "inbox/a.csv", SHA256: "aaaaaaaaaaaaaaaa00"}, {File: "inbox/bad.csv", SHA256: "bbbbbbbbbbbbbbbb00"},
		{File: "inbox/c.csv", SHA256: "cccccccccccccccc00"},
	}, nil)
	env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(
		func(_ workflow.Context, in ProcessFileInput) (*Summary, error) {
			if in.File == "inbox/bad.csv" {
				return nil, temporal.NewNonRetryableApplicationError("line 1: expected a header", activities.ErrTypeBadFile, nil)
			}
			return &Summary{}, nil
		})
	m := &moves{to: map[string]string{}}
	env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(m.record)

	env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, "inbox inbox/: 1 of 3 files not processed successfully (archived 2, failed 1, left in the inbox 0): inbox/bad.csv (failed: line 1: expected a header)")
	res := inboxResult(t, env, true)
	require.Equal(t, map[string]string{
		"inbox/a.csv": activities.ArchiveDir, "inbox/bad.csv": activities.FailedDir, "inbox/c.csv": activities.ArchiveDir,
	}, m.to, "every file is filed before the run fails")
	require.Len(t, res.Files, 3)
	require.Equal(t, []string{InboxArchived, InboxFailed, InboxArchived},
		[]string{res.Files[0].Outcome, res.Files[1].Outcome, res.Files[2].Outcome})
	require.Equal(t, "failed/x", res.Files[1].MovedTo)
	require.Contains(t, res.Files[1].Error, "expected a header")
	require.Equal(t, 2, res.Totals.Archived)
	require.Equal(t, 1, res.Totals.Failed)
}

// fakeInbox is an inbox directory for the orchestration tests: ListInbox lists what is still
// in it, MoveInboxFile takes a file out of it.
type fakeInbox struct {
	mu        sync.Mutex
	waiting   []activities.InboxFile
	moved     map[string]int // moves of each file
	processed map[string]int // ProcessFile runs of each file
	stuck     string         // a file that cannot be moved
}

func (f *fakeInbox) list(context.Context, activities.ListInboxInput) ([]activities.InboxFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.waiting), nil
}

func (f *fakeInbox) move(_ context.Context, in activities.MoveInput) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.File == f.stuck {
		return "", temporal.NewNonRetryableApplicationError("permission denied", activities.ErrTypeConfig, nil)
	}
	f.moved[in.File]++
	f.waiting = slices.DeleteFunc(f.waiting, func(w activities.InboxFile) bool { return w.File == in.File })
	return in.To + "/" + path.Base(in.File), nil
}

func (f *fakeInbox) process(_ workflow.Context, in ProcessFileInput) (*Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.processed[in.File]++
	return &Summary{}, nil
}

// A large inbox continues as new every FilesPerRun files instead of keeping every file's run in
// one history; the next run lists the inbox again. Every file is processed and moved exactly
// once, a file that could not be moved is not taken again by the later runs, and the last run's
// totals count the files of every run.
func TestInboxContinuesAsNew(t *testing.T) {
	const n = 25
	inbox := &fakeInbox{moved: map[string]int{}, processed: map[string]int{}, stuck: "inbox/f03.csv"}
	for i := range n {
		inbox.waiting = append(inbox.waiting, activities.InboxFile{
			File: fmt.Sprintf("inbox/f%02d.csv", i), SHA256: fmt.Sprintf("%016x%04d", i, i)})
	}
	in := ProcessInboxInput{MaxFiles: 3, FilesPerRun: 10}
	runs := 0
	var err error
	var env *testsuite.TestWorkflowEnvironment
	for runs = 1; runs < 10; runs++ {
		env = newInboxEnv(t)
		env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return(inbox.list)
		env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(inbox.move)
		env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(inbox.process)
		env.ExecuteWorkflow(ProcessInbox, in)
		require.True(t, env.IsWorkflowCompleted())
		err = env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if !errors.As(err, &can) {
			break
		}
		require.Equal(t, "ProcessInbox", can.WorkflowType.Name)
		in = ProcessInboxInput{}
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
		require.Equal(t, runs, in.Before.Runs)
	}
	require.Equal(t, 3, runs, "10 + 10 + 5 files")
	for i := range n {
		f := fmt.Sprintf("inbox/f%02d.csv", i)
		require.Equal(t, 1, inbox.processed[f], f)
		if f != inbox.stuck {
			require.Equal(t, 1, inbox.moved[f], f)
		}
	}
	require.Equal(t, []string{inbox.stuck}, []string{inbox.waiting[0].File})
	require.ErrorContains(t, err, "1 of 25 files not processed successfully (archived 25, failed 0, left in the inbox 0): inbox/f03.csv (archived, not moved: ")
	res := inboxResult(t, env, true)
	require.Len(t, res.Files, 5, "the last run's files")
	require.Equal(t, 3, res.Totals.Runs)
	require.Equal(t, 25, res.Totals.Archived)
	require.Empty(t, res.Totals.Skip)
}

// By default an inbox runs DefaultInboxParallel files at once; a run recorded before
// inboxParallelChange, legacyInboxParallel.
func TestInboxDefaultParallelism(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version workflow.Version
		want    int
	}{
		{"current", 1, DefaultInboxParallel},
		{"recorded before the change", workflow.DefaultVersion, legacyInboxParallel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newInboxEnv(t)
			env.OnGetVersion(inboxParallelChange, workflow.DefaultVersion, 1).Return(tc.version)
			var files []activities.InboxFile
			for i := range 40 {
				files = append(files, activities.InboxFile{File: fmt.Sprintf("inbox/f%02d.csv", i), SHA256: fmt.Sprintf("%016x%04d", i, i)})
			}
			env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return(files, nil)
			open, most, runs := 0, 0, 0
			env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(
				func(ctx workflow.Context, _ ProcessFileInput) (*Summary, error) {
					open++
					runs++
					most = max(most, open)
					err := workflow.Sleep(ctx, time.Minute)
					open--
					return &Summary{}, err
				})
			m := &moves{to: map[string]string{}}
			env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(m.record)

			env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{})
			res := inboxResult(t, env, false)
			require.Equal(t, 40, res.Totals.Archived)
			require.Equal(t, 40, runs)
			require.Len(t, m.to, 40)
			require.Equal(t, tc.want, most, "runs open at once")
		})
	}
}

// The next file's run starts as soon as one's run is over, while that file is being moved; the
// inbox run still waits for every move.
func TestInboxStartsTheNextFileWhileMoving(t *testing.T) {
	env := newInboxEnv(t)
	env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
		{File: "inbox/a.csv", SHA256: "aaaaaaaaaaaaaaaa00"}, {File: "inbox/b.csv", SHA256: "bbbbbbbbbbbbbbbb00"},
		{File: "inbox/c.csv", SHA256: "cccccccccccccccc00"},
	}, nil)
	var began time.Time
	var starts []time.Duration
	env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, _ ProcessFileInput) (*Summary, error) {
			if began.IsZero() {
				began = workflow.Now(ctx)
			}
			starts = append(starts, workflow.Now(ctx).Sub(began))
			return &Summary{}, workflow.Sleep(ctx, time.Minute)
		})
	m := &moves{to: map[string]string{}}
	env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).After(time.Hour).Return(m.record)

	env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{MaxFiles: 1})
	res := inboxResult(t, env, false)
	require.Equal(t, 3, res.Totals.Archived)
	require.Len(t, m.to, 3, "every file is moved before the inbox run ends")
	require.Len(t, starts, 3)
	for i, d := range starts {
		// One run at a time, each right after the one before: no move in between.
		require.Less(t, d, time.Duration(i+1)*time.Minute+time.Minute, "run %d started after %s", i, d)
	}
}

// An inbox run tells each file's run the file's size, so that a small file's run is lean, and
// moves the files as local activities (version inbox-lean).
func TestInboxRunsAreLean(t *testing.T) {
	env := newInboxEnv(t)
	env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
		{File: "inbox/acme/a.csv", SHA256: "aaaaaaaaaaaaaaaa0000", Size: 1234, Account: "acme"},
		{File: "inbox/b.csv", SHA256: "bbbbbbbbbbbbbbbb0000", Size: LocalFileBytes + 1},
	}, nil)
	var mu sync.Mutex
	sizes := map[string]int64{}
	env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ProcessFileInput) (*Summary, error) {
		mu.Lock()
		defer mu.Unlock()
		sizes[in.File] = in.Size
		return &Summary{}, nil
	})
	m := &moves{to: map[string]string{}}
	env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(m.record)
	local, scheduled := watchActivities(env)

	env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{})
	inboxResult(t, env, false)
	require.Equal(t, map[string]int64{"inbox/acme/a.csv": 1234, "inbox/b.csv": LocalFileBytes + 1}, sizes)
	require.Len(t, m.to, 2)
	require.True(t, local["MoveInboxFile"], "files moved as local activities")
	require.False(t, scheduled["MoveInboxFile"], "no move scheduled")
}
