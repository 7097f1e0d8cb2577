package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

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
			env.OnActivity(a.WaitForRun, mock.Anything, activities.WaitRunInput{RunID: RunID(sum)}).Return(
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
			require.NoError(t, env.GetWorkflowError())
			var res InboxResult
			require.NoError(t, env.GetWorkflowResult(&res))
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
// stays in the inbox.
func TestInboxFilesARunStartedElsewhere(t *testing.T) {
	env := newInboxEnv(t)
	const done, unknown = "aaaaaaaaaaaaaaaa0000", "bbbbbbbbbbbbbbbb0000"
	env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
		{File: "inbox/first.csv", SHA256: done}, {File: "inbox/again.csv", SHA256: done},
		{File: "inbox/lost.csv", SHA256: unknown}, {File: "inbox/lost-again.csv", SHA256: unknown},
	}, nil)
	env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(&Summary{}, nil)
	env.OnActivity(a.WaitForRun, mock.Anything, activities.WaitRunInput{RunID: RunID(done)}).
		Return(activities.RunOutcome{Completed: true}, nil).Once()
	env.OnActivity(a.WaitForRun, mock.Anything, activities.WaitRunInput{RunID: RunID(unknown)}).
		Return(activities.RunOutcome{}, temporal.NewNonRetryableApplicationError("not found", "NotFound", errors.New("not found"))).Once()
	m := &moves{to: map[string]string{}}
	env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(m.record)

	env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{MaxFiles: 1})
	require.NoError(t, env.GetWorkflowError())
	var res InboxResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, map[string]string{
		"inbox/first.csv": activities.ArchiveDir, "inbox/again.csv": activities.ArchiveDir, "inbox/lost.csv": activities.ArchiveDir,
	}, m.to, "lost-again.csv is not moved")
	require.Equal(t, InboxLeft, res.Files[3].Outcome)
	require.Contains(t, res.Files[3].Error, "not found")
	require.Empty(t, res.Files[3].MovedTo)
}
