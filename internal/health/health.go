// Package health serves the worker's liveness and readiness endpoints.
//
// /healthz answers 200 "ok" for as long as the process can serve HTTP; it checks nothing else, so
// an orchestrator restarts the process only when it is truly stuck. /readyz runs every Check
// concurrently under a short deadline and answers 200 "ok" when all of them pass, or 503 with one
// plain-text line per failing check ("name: reason"). Reasons are sanitized: credentials that a
// dependency's error may echo (passwords in connection URLs, password=… pairs, bearer tokens)
// are replaced by REDACTED before they are written.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Timeout bounds one readiness evaluation: a check that has not returned by then fails with
// "timed out". It is shorter than the probe timeouts of the deployment manifests, so a slow
// dependency yields a 503 with a reason rather than a client-side timeout.
const Timeout = 3 * time.Second

// maxReasonBytes caps the length of one failure reason in a /readyz answer.
const maxReasonBytes = 300

// Check reports whether a dependency is usable; Probe returns nil when it is. Probe must honour
// ctx: /readyz cancels it after Timeout (or when the client goes away) and reports the check as
// failed without waiting for it.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Handler returns a mux serving GET (and HEAD) /healthz and /readyz over checks, evaluated in
// the order given for the report. Other routes, such as /metrics, may be added to the returned
// mux. Handler panics if a check has no Probe, as that is a programming error.
func Handler(checks ...Check) *http.ServeMux {
	checks = slices.Clone(checks)
	for i, c := range checks {
		if c.Probe == nil {
			panic(fmt.Sprintf("health: check %d (%q) has no Probe", i, c.Name))
		}
		if strings.TrimSpace(c.Name) == "" {
			checks[i].Name = fmt.Sprintf("check %d", i+1)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failures := evaluate(r.Context(), checks)
		if len(failures) == 0 {
			writeText(w, http.StatusOK, "ok\n")
			return
		}
		writeText(w, http.StatusServiceUnavailable, strings.Join(failures, "\n")+"\n")
	})
	return mux
}

// evaluate runs every check concurrently and returns one "name: reason" line per failing check,
// in the order of checks.
func evaluate(parent context.Context, checks []Check) []string {
	ctx, cancel := context.WithTimeout(parent, Timeout)
	defer cancel()

	results := make([]chan error, len(checks))
	for i, c := range checks {
		results[i] = make(chan error, 1) // buffered: a probe that returns late never blocks
		go func() { results[i] <- probe(ctx, c.Probe) }()
	}

	var failures []string
	for i, c := range checks {
		var err error
		select {
		case err = <-results[i]:
		case <-ctx.Done():
			select { // a result that arrived together with the deadline still counts
			case err = <-results[i]:
			default:
				err = ctx.Err()
			}
		}
		if err != nil && ctx.Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			err = expired(parent)
		}
		if err != nil {
			failures = append(failures, oneLine(c.Name)+": "+Sanitize(err.Error()))
		}
	}
	return failures
}

// expired explains why a check did not finish: the deadline, or the client going away.
func expired(parent context.Context) error {
	if parent.Err() != nil {
		return errors.New("request cancelled")
	}
	return fmt.Errorf("timed out after %s", Timeout)
}

// probe calls p, turning a panic into an error so that one faulty check cannot crash the process.
func probe(ctx context.Context, p func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("check panicked: %v", v)
		}
	}()
	return p(ctx)
}

func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

var (
	// scheme://user:password@host → scheme://REDACTED@host (the whole user information goes:
	// a token may stand where the user name is).
	urlUserinfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]*(?::[^\s@]*)?@`)
	// password=… and similar keyword/value pairs, as in libpq connection strings.
	secretPair = regexp.MustCompile(`(?i)\b(password|passwd|pwd|sslpassword|secret|token|api[_-]?key)(\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s,;&]+)`)
	// Authorization header values.
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[a-z0-9._~+/=\-]+`)
)

// Sanitize returns msg on one line, at most a few hundred bytes long, with credentials replaced
// by REDACTED: the user information of URLs, password=/token=/api_key= style pairs and bearer
// or basic authorization values.
func Sanitize(msg string) string {
	msg = urlUserinfo.ReplaceAllString(msg, "${1}REDACTED@")
	msg = secretPair.ReplaceAllString(msg, "${1}${2}REDACTED")
	msg = authScheme.ReplaceAllString(msg, "${1} REDACTED")
	msg = oneLine(msg)
	if len(msg) > maxReasonBytes {
		cut := maxReasonBytes
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// oneLine replaces line breaks and other control characters with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
