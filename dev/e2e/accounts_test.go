package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/workerapp"
	"github.com/txflow/txflow/workflows"
)

// Two banks' files whose transaction ids overlap: within one account, T2 and T3 of the second
// file would conflict with the first's.
const (
	acmeFile = "id,amount,wording\n" +
		"T1,10.00,coffee TAXI\n" +
		"T2,-3.00,lunch\n" +
		"T3,400.00,TOTO sale\n"
	globexFile = "id,amount,wording\n" +
		"T1,10.00,coffee TAXI\n" +
		"T2,-250.00,rent TATA\n" +
		"T3,5.00,refund\n"
	acmeOutput = "id,amount,wording,tag,annotation,error\n" +
		"T1,10.00,coffee TAXI,TAXI,SALE,\n" +
		"T2,-3.00,lunch,,SMALL EXPENSE,\n" +
		"T3,400.00,TOTO sale,TOTO,LARGE SALE,\n"
	globexOutput = "id,amount,wording,tag,annotation,error\n" +
		"T1,10.00,coffee TAXI,TAXI,SALE,\n" +
		"T2,-250.00,rent TATA,TATA,EXPENSE,\n" +
		"T3,5.00,refund,,SALE,\n"
)

// startAccountRun starts ProcessFile on the file name of the input root for account, with the
// workflow id and the reuse policy the starter uses.
func startAccountRun(t *testing.T, h *opsHarness, name, account string) client.WorkflowRun {
	t.Helper()
	sum, err := activities.HashFile(filepath.Join(h.input, name))
	require.NoError(t, err)
	run, err := h.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:                    workflows.RunID(account, sum),
		TaskQueue:             workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.ProcessFile, workflows.ProcessFileInput{File: name, SHA256: sum, Account: account, HeartbeatTimeout: testHeartbeat})
	require.NoError(t, err)
	return run
}

// accountRows counts the stored transactions of each account.
func accountRows(t *testing.T, h *opsHarness) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.env["DATABASE_URL"])
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT account, count(*) FROM transactions GROUP BY account")
	require.NoError(t, err)
	out := map[string]int64{}
	for rows.Next() {
		var a string
		var n int64
		require.NoError(t, rows.Scan(&a, &n))
		out[a] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// requireAccountRun checks a completed run of account: every row accepted and new, the account
// named in its summary.json and its output what the file says.
func requireAccountRun(t *testing.T, h *opsHarness, s workflows.Summary, account, output string) {
	t.Helper()
	require.Equal(t, workflows.StatusCompleted, s.Status, s.RunID)
	require.Equal(t, account, s.Account, s.RunID)
	require.EqualValues(t, 3, s.Ingested, s.RunID)
	require.EqualValues(t, 3, s.New, "%s: the other account's ids are not this account's", s.RunID)
	require.Zero(t, s.Rejected, s.RunID)
	b, err := os.ReadFile(filepath.Join(h.output, s.RunID, activities.OutputFile))
	require.NoError(t, err)
	require.Equal(t, output, string(b), s.RunID)
	b, err = os.ReadFile(filepath.Join(h.output, s.RunID, activities.SummaryFile))
	require.NoError(t, err)
	require.Contains(t, string(b), fmt.Sprintf(`"account": %q`, account), s.RunID)
}

// Two accounts whose files share transaction ids, in one database: one after the other, then
// at the same time (the same file for two accounts is two runs). Each run accepts every row as
// new, its output is its own file's, and its summary, search attribute and event name its
// account.
func TestAccountsOverlappingIDs(t *testing.T) {
	h := startOps(t, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h.put("", "acme.csv", []byte(acmeFile))
	h.put("", "globex.csv", []byte(globexFile))

	// One after the other.
	var acme, globex workflows.Summary
	require.NoError(t, startAccountRun(t, h, "acme.csv", "acme").Get(ctx, &acme))
	require.NoError(t, startAccountRun(t, h, "globex.csv", "globex").Get(ctx, &globex))
	requireAccountRun(t, h, acme, "acme", acmeOutput)
	requireAccountRun(t, h, globex, "globex", globexOutput)
	require.Equal(t, workflows.RunID("acme", sha(t, []byte(acmeFile))), acme.RunID)
	require.True(t, strings.HasPrefix(acme.RunID, "txflow-acme-"), acme.RunID)

	// At the same time: the globex file for two more accounts, one of them an IBAN with ':'.
	runs := map[string]client.WorkflowRun{}
	for _, account := range []string{"initech", "FR76:3000_6"} {
		runs[account] = startAccountRun(t, h, "globex.csv", account)
	}
	require.NotEqual(t, runs["initech"].GetID(), runs["FR76:3000_6"].GetID())
	for account, run := range runs {
		var s workflows.Summary
		require.NoError(t, run.Get(ctx, &s), account)
		requireAccountRun(t, h, s, account, globexOutput)
		require.DirExists(t, filepath.Join(h.output, "txflow-"+account+"-"+sha(t, []byte(globexFile))[:16]))
	}
	require.Equal(t, map[string]int64{"acme": 3, "globex": 3, "initech": 3, "FR76:3000_6": 3}, accountRows(t, h))

	// Each run is found by its account.
	eventually(t, time.Minute, "the runs listed by account", func() bool {
		return len(h.list(`TxflowAccount = "acme"`)) == 1 && len(h.list(`TxflowAccount = "FR76:3000_6"`)) == 1
	})
	require.Equal(t, []string{acme.RunID}, h.list(`TxflowAccount = "acme"`))
	require.Equal(t, []string{runs["FR76:3000_6"].GetID()}, h.list(`TxflowAccount = "FR76:3000_6"`))
	eventually(t, time.Minute, "four events", func() bool { return len(h.events.notices()) == 4 })
	var accounts []string
	for _, n := range h.events.notices() {
		accounts = append(accounts, n.Account)
	}
	sort.Strings(accounts)
	require.Equal(t, []string{"FR76:3000_6", "acme", "globex", "initech"}, accounts)

	// The same file for the same account again adds nothing.
	var again workflows.Summary
	require.NoError(t, startAccountRun(t, h, "acme.csv", "acme").Get(ctx, &again))
	require.Equal(t, acme.RunID, again.RunID)
	require.Zero(t, again.New)
	require.EqualValues(t, 3, again.Ingested)

	// An invalid account fails the run at once, not retried, and saying why.
	err := startAccountRun(t, h, "acme.csv", "acme corp").Get(ctx, nil)
	require.ErrorContains(t, err, "invalid account for the run")
	require.ErrorContains(t, err, activities.ErrTypeBadAccount)
	require.Equal(t, map[string]int64{"acme": 3, "globex": 3, "initech": 3, "FR76:3000_6": 3}, accountRows(t, h))
}

// A file with an account column: its rows are stored under their own accounts, whatever the
// run's, and its outputs start with the account column.
func TestAccountsMultiAccountFile(t *testing.T) {
	h := startOps(t, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h.put("", "both.csv", []byte("account,id,amount,wording\n"+
		"acme,T1,10.00,coffee TAXI\n"+
		"globex,T1,-250.00,rent TATA\n"+
		"acme,T2,-3.00,lunch\n"+
		"acme corp,T9,1.00,bad account\n"))
	var s workflows.Summary
	require.NoError(t, startAccountRun(t, h, "both.csv", "").Get(ctx, &s))
	require.Equal(t, "default", s.Account)
	require.True(t, s.AccountColumn)
	require.EqualValues(t, 3, s.Ingested)
	require.EqualValues(t, 1, s.Rejected)
	b, err := os.ReadFile(filepath.Join(h.output, s.RunID, activities.OutputFile))
	require.NoError(t, err)
	require.Equal(t, "account,id,amount,wording,tag,annotation,error\n"+
		"acme,T1,10.00,coffee TAXI,TAXI,SALE,\n"+
		"globex,T1,-250.00,rent TATA,TATA,EXPENSE,\n"+
		"acme,T2,-3.00,lunch,,SMALL EXPENSE,\n", string(b))
	b, err = os.ReadFile(filepath.Join(h.output, s.RunID, activities.ErrorReportFile))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "account,line,id,amount,wording,reason\nacme corp,5,T9,1.00,bad account,invalid_account"), string(b))
	require.Equal(t, map[string]int64{"acme": 2, "globex": 1}, accountRows(t, h), "no row under the run's account")

	// The same file for the run of another account: the rows keep their own accounts.
	var other workflows.Summary
	require.NoError(t, startAccountRun(t, h, "both.csv", "initech").Get(ctx, &other))
	require.NotEqual(t, s.RunID, other.RunID)
	require.Zero(t, other.New)
	require.Equal(t, map[string]int64{"acme": 2, "globex": 1}, accountRows(t, h))
}

// The inbox's sub-folders per account: the same file in inbox/acme/ and inbox/globex/ is two
// runs of two accounts, each filed under archive/<account>/; a sub-folder not named after an
// account is reported, its file left where it is.
func TestAccountsInboxFolders(t *testing.T) {
	h := startOps(t, 0, 0)
	h.put("inbox/acme", "x.csv", []byte(acmeFile))
	h.put("inbox/globex", "x.csv", []byte(acmeFile))
	h.put("inbox", "plain.csv", []byte(globexFile))
	sum := sha(t, []byte(acmeFile))

	res := h.inbox("inbox-accounts")
	outcomes := map[string]workflows.InboxFileResult{}
	for _, f := range res.Files {
		outcomes[f.File] = f
	}
	require.Len(t, outcomes, 3)
	for _, account := range []string{"acme", "globex"} {
		f := outcomes["inbox/"+account+"/x.csv"]
		require.Equal(t, workflows.InboxArchived, f.Outcome, "%+v", f)
		require.Equal(t, "archive/"+account+"/x.csv", f.MovedTo)
		require.Equal(t, workflows.RunID(account, sum), f.RunID)
		requireAccountRun(t, h, h.summaryOf(f.RunID), account, acmeOutput)
		require.FileExists(t, filepath.Join(h.input, "archive", account, "x.csv"))
	}
	plain := outcomes["inbox/plain.csv"]
	require.Equal(t, "archive/plain.csv", plain.MovedTo, "a file directly in the inbox is of the default account")
	requireAccountRun(t, h, h.summaryOf(plain.RunID), "default", globexOutput)
	require.Equal(t, map[string]int64{"acme": 3, "globex": 3, "default": 3}, accountRows(t, h))

	// A sub-folder whose name is not an account.
	h.put("inbox/acme corp", "y.csv", []byte(globexFile))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "inbox-refused", TaskQueue: workflows.TaskQueue},
		workflows.ProcessInbox, workflows.ProcessInboxInput{})
	require.NoError(t, err)
	res, failed := inboxOutcome(t, ctx, run)
	require.True(t, failed, "a refused sub-folder fails the inbox run")
	require.Len(t, res.Files, 1)
	require.Equal(t, workflows.InboxRefused, res.Files[0].Outcome)
	require.Equal(t, "inbox/acme corp", res.Files[0].File)
	require.Contains(t, res.Files[0].Error, "not named after a valid account")
	require.ErrorContains(t, run.Get(ctx, nil), "inbox/acme corp")
	require.FileExists(t, filepath.Join(h.input, "inbox", "acme corp", "y.csv"), "left where it is")
}

// summaryOf reads the summary.json of a run.
func (h *opsHarness) summaryOf(runID string) workflows.Summary {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.output, runID, activities.SummaryFile))
	require.NoError(h.t, err)
	var s workflows.Summary
	require.NoError(h.t, json.Unmarshal(b, &s))
	return s
}

// A namespace set up before accounts existed lacks TxflowAccount: the worker adds it at start,
// as a Keyword, beside the others.
func TestAccountsSearchAttributeAddedAtWorkerStart(t *testing.T) {
	before := workflows.SearchAttributes()
	delete(before, workflows.SearchAttrAccount.GetName())
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: before})
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Namespace: srv.Namespace()})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	custom := func() map[string]enumspb.IndexedValueType {
		resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace()})
		require.NoError(t, err)
		return resp.GetCustomAttributes()
	}
	require.NotContains(t, custom(), "TxflowAccount")
	require.NoError(t, workerapp.EnsureSearchAttributes(ctx, c, srv.Namespace()))
	got := custom()
	require.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, got["TxflowAccount"])
	for name, typ := range workflows.SearchAttributes() {
		require.Equal(t, typ, got[name], name)
	}
}
