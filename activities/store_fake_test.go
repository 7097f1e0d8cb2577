package activities

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// fakeStore is an in-memory Store for the activities' unit tests. It keeps the contract of
// postgres.DB that the activities rely on: a batch is loaded once or refused, BeginIngest with
// resume returns the checkpoint of an unsettled run of the same hash or the totals of a settled
// one, and otherwise restarts the run. It does not settle duplicates or conflicts (the
// PostgreSQL tests cover them): every record loaded is accepted and new.
type fakeStore struct {
	mu   sync.Mutex
	runs map[string]*fakeRun
	tags map[string]string // transaction id -> tag
	anns map[string]string // transaction id -> annotation

	// outbox holds the messages still to publish, by run and seq of the line that stored them
	// (FinishIngestFile with Outbox), under keys numbered from 1 across runs.
	outbox  map[string]map[int64]postgres.OutboxMessage
	lastKey int64

	// rules are the versions of the rules, rules[0] being version 1; tagVersions and
	// annVersions the version each result was computed with, by transaction id.
	rules       []postgres.RulesVersion
	tagVersions map[string]int
	annVersions map[string]int

	begins []bool               // the resume argument of each BeginIngest call
	facts  []postgres.FileFacts // the argument of each FinishIngestFile call
	loads  []fakeLoad           // every LoadBatch call that committed
	calls  fakeCalls            // per method, the number of calls
	fail   fakeFailure          // errors to inject
}

type fakeRun struct {
	run      postgres.Run
	lines    map[int64]txn.Record // by seq
	rejected []txn.Rejected
	records  int64 // records committed, accepted and rejected
	nextSeq  int64
	settled  bool
	rowsRead int64
	totals   postgres.IngestCounts
	// accountColumn is what FinishIngestFile recorded: the file had an account column.
	accountColumn bool
}

// fakeLoad is one committed batch.
type fakeLoad struct {
	Begin    int   // the BeginIngest call it followed (1-based)
	FirstSeq int64 // seq of its first record
	Records  int   // accepted records
	Rejected int   // rejected rows
}

type fakeCalls struct{ load, finish, output int }

// fakeFailure makes the store fail; each error is returned once.
type fakeFailure struct {
	loadCall    int   // the LoadBatch call (1-based) that fails without committing
	afterFinish error // FinishIngest settles the run, then returns this, as if the answer were lost
	output      error // WriteOutput writes half of the file, then returns this
	delivered   error // MarkDelivered returns this, deleting nothing
}

var errConnectionLost = errors.New("connection lost")

func newFakeStore() *fakeStore {
	return &fakeStore{runs: map[string]*fakeRun{}, tags: map[string]string{}, anns: map[string]string{},
		outbox: map[string]map[int64]postgres.OutboxMessage{}, tagVersions: map[string]int{}, annVersions: map[string]int{}}
}

func (s *fakeStore) BeginIngest(_ context.Context, run postgres.Run, resume bool) (postgres.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begins = append(s.begins, resume)
	if run.ID == "" {
		return postgres.Checkpoint{}, errors.New("begin ingest: empty run id")
	}
	if run.Account != "" {
		if _, err := txn.ParseAccount(run.Account); err != nil {
			return postgres.Checkpoint{}, fmt.Errorf("begin ingest: %w", err)
		}
	}
	if r, ok := s.runs[run.ID]; ok && resume && run.SHA256 != "" && r.run.SHA256 == run.SHA256 {
		if r.settled {
			totals := r.totals
			totals.Pending = int64(len(s.outbox[run.ID]))
			return postgres.Checkpoint{Settled: true, RowsRead: r.rowsRead, Totals: totals, NextSeq: r.nextSeq, Records: r.records,
				RulesVersion: r.run.RulesVersion}, nil
		}
		if r.run.RulesVersion == 0 {
			r.run.RulesVersion = run.RulesVersion
		}
		return postgres.Checkpoint{Records: r.records, NextSeq: r.nextSeq, RulesVersion: r.run.RulesVersion}, nil
	}
	s.runs[run.ID] = &fakeRun{run: run, lines: map[int64]txn.Record{}, nextSeq: 1}
	return postgres.Checkpoint{NextSeq: 1, RulesVersion: run.RulesVersion}, nil
}

func (s *fakeStore) LoadBatch(_ context.Context, runID string, firstSeq int64, recs []txn.Record, rejected []txn.Rejected) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.load++
	if s.calls.load == s.fail.loadCall {
		return fmt.Errorf("load batch at seq %d: %w", firstSeq, errConnectionLost)
	}
	r, ok := s.runs[runID]
	if !ok {
		return fmt.Errorf("load batch: %w", postgres.ErrRunNotFound)
	}
	if r.settled {
		return fmt.Errorf("load batch: run %s already settled", runID)
	}
	if firstSeq != r.nextSeq {
		return fmt.Errorf("load batch: first seq %d, the run's next is %d", firstSeq, r.nextSeq)
	}
	for i, rec := range recs {
		r.lines[firstSeq+int64(i)] = rec
	}
	r.rejected = append(r.rejected, rejected...)
	r.records += int64(len(recs) + len(rejected))
	r.nextSeq += int64(len(recs))
	s.loads = append(s.loads, fakeLoad{Begin: len(s.begins), FirstSeq: firstSeq, Records: len(recs), Rejected: len(rejected)})
	return nil
}

func (s *fakeStore) FinishIngestFile(_ context.Context, runID string, f postgres.FileFacts) (postgres.IngestCounts, error) {
	rowsRead := f.RowsRead
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.finish++
	s.facts = append(s.facts, f)
	r, ok := s.runs[runID]
	if !ok {
		return postgres.IngestCounts{}, fmt.Errorf("finish ingest: %w", postgres.ErrRunNotFound)
	}
	c := postgres.IngestCounts{Accepted: int64(len(r.lines)), Rejected: int64(len(r.rejected))}
	for seq, rec := range r.lines {
		c.MaxSeq = max(c.MaxSeq, seq)
		if rec.Error != "" {
			c.Errors++
		}
	}
	if !r.settled {
		c.New = c.Accepted
		r.settled, r.rowsRead, r.totals, r.accountColumn = true, rowsRead, c, f.AccountColumn
		if f.Outbox {
			msgs := map[int64]postgres.OutboxMessage{}
			for seq, rec := range r.lines {
				account := rec.Account
				if account == "" {
					account = r.run.Account
				}
				var date string
				if !rec.Date.IsZero() {
					date = rec.Date.Format(time.DateOnly)
				}
				var recErr *string
				if rec.Error != "" {
					recErr = ptr(string(rec.Error))
				}
				s.lastKey++
				msgs[seq] = postgres.OutboxMessage{OutboxKey: postgres.OutboxKey{Key: s.lastKey, Version: 1}, RunID: runID,
					CreatedAt: time.Now(), Account: account, ID: rec.ID, Date: date, Amount: rec.Amount.StringFixed(2),
					Wording: rec.Wording, Error: recErr}
			}
			s.outbox[runID] = msgs
		}
	}
	c.Pending = int64(len(s.outbox[runID]))
	if err := s.fail.afterFinish; err != nil {
		s.fail.afterFinish = nil
		return postgres.IngestCounts{}, err
	}
	return c, nil
}

// seqs returns the run's seqs in order.
func (r *fakeRun) seqs() []int64 {
	seqs := make([]int64, 0, len(r.lines))
	for seq := range r.lines {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// chunk calls f for each line of a settled run with from <= seq < to.
func (s *fakeStore) chunk(runID string, from, to int64, f func(txn.Record)) (postgres.ChunkCounts, error) {
	r, ok := s.runs[runID]
	if !ok {
		return postgres.ChunkCounts{}, postgres.ErrRunNotFound
	}
	if !r.settled {
		return postgres.ChunkCounts{}, postgres.ErrRunNotIngested
	}
	var c postgres.ChunkCounts
	for _, seq := range r.seqs() {
		if seq >= from && seq < to {
			c.Lines++
			f(r.lines[seq])
		}
	}
	return c, nil
}

func (s *fakeStore) TagChunkVersion(_ context.Context, runID string, from, to int64, version int, tag func(string) string) (postgres.ChunkCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	computed := int64(0)
	c, err := s.chunk(runID, from, to, func(rec txn.Record) {
		if _, done := s.tags[rec.ID]; !done {
			s.tags[rec.ID] = tag(rec.Wording)
			s.tagVersions[rec.ID] = version
			computed++
		}
	})
	c.Computed = computed
	return c, err
}

func (s *fakeStore) AnnotateChunkVersion(_ context.Context, runID string, from, to int64, version int, annotate func(decimal.Decimal) string) (postgres.ChunkCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	computed := int64(0)
	c, err := s.chunk(runID, from, to, func(rec txn.Record) {
		if _, done := s.anns[rec.ID]; !done && rec.Error == "" {
			s.anns[rec.ID] = annotate(rec.Amount)
			s.annVersions[rec.ID] = version
			computed++
		}
	})
	c.Computed = computed
	return c, err
}

// WriteOutput writes the run's lines as CSV (id, amount, wording, tag, annotation, error) and
// counts them as it goes.
func (s *fakeStore) WriteOutput(_ context.Context, runID string, opts postgres.OutputOptions, w io.Writer) (postgres.OutputCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.output++
	r, ok := s.runs[runID]
	if !ok {
		return postgres.OutputCounts{}, fmt.Errorf("write output: %w", postgres.ErrRunNotFound)
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "amount", "wording", "tag", "annotation", "error"})
	var c postgres.OutputCounts
	seqs := r.seqs()
	for i, seq := range seqs {
		if s.fail.output != nil && i == len(seqs)/2 {
			cw.Flush()
			err := s.fail.output
			s.fail.output = nil
			return c, err
		}
		rec := r.lines[seq]
		tag, ann := s.tags[rec.ID], s.anns[rec.ID]
		if opts.OmitTags {
			tag = ""
		}
		if opts.OmitAnnotations || rec.Error != "" {
			ann = ""
		}
		cw.Write([]string{rec.ID, rec.Amount.StringFixed(2), rec.Wording, tag, ann, string(rec.Error)})
		c.Rows++
		if tag != "" {
			c.Tagged++
		}
		if ann != "" {
			c.Annotated++
		}
	}
	cw.Flush()
	return c, cw.Error()
}

// WriteErrorReport writes the run's rejected rows and lines in error (line, id, reason).
func (s *fakeStore) WriteErrorReport(_ context.Context, runID string, w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[runID]
	if !ok {
		return 0, fmt.Errorf("write error report: %w", postgres.ErrRunNotFound)
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"line", "id", "reason"})
	var n int64
	for _, rej := range r.rejected {
		cw.Write([]string{fmt.Sprint(rej.Line), rej.ID, string(rej.Reason)})
		n++
	}
	for _, seq := range r.seqs() {
		if rec := r.lines[seq]; rec.Error != "" {
			cw.Write([]string{fmt.Sprint(rec.Line), rec.ID, string(rec.Error)})
			n++
		}
	}
	cw.Flush()
	return n, cw.Error()
}

// OutboxMessages returns the run's messages of lines in [from, to) still in the outbox, with
// their tags and annotations as computed so far (nil when none: "" is no tag word).
func (s *fakeStore) OutboxMessages(_ context.Context, runID string, from, to int64) ([]postgres.OutboxMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []postgres.OutboxMessage
	r, ok := s.runs[runID]
	if !ok {
		return nil, nil
	}
	for _, seq := range r.seqs() {
		m, ok := s.outbox[runID][seq]
		if !ok || seq < from || seq >= to {
			continue
		}
		id := r.lines[seq].ID
		if tag, ok := s.tags[id]; ok && tag != "" {
			m.Tag = ptr(tag)
		}
		if ann, ok := s.anns[id]; ok && ann != "" {
			m.Annotation = ptr(ann)
		}
		out = append(out, m)
	}
	return out, nil
}

// MarkDelivered deletes the outbox rows of keys.
func (s *fakeStore) MarkDelivered(_ context.Context, keys []postgres.OutboxKey) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail.delivered; err != nil {
		s.fail.delivered = nil
		return 0, err
	}
	deliver := map[postgres.OutboxKey]bool{}
	for _, k := range keys {
		deliver[k] = true
	}
	var n int64
	for _, msgs := range s.outbox {
		for seq, m := range msgs {
			if deliver[m.OutboxKey] {
				delete(msgs, seq)
				n++
			}
		}
	}
	return n, nil
}

// pending returns the number of the run's messages still in the outbox.
func (s *fakeStore) pending(runID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox[runID])
}

func ptr[T any](v T) *T { return &v }

var (
	_ Store       = (*fakeStore)(nil)
	_ OutboxStore = (*fakeStore)(nil)
)

// CurrentRules returns the last version, making version 1 from seed when there is none.
func (s *fakeStore) CurrentRules(_ context.Context, seed txn.Rules) (postgres.RulesVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rules) == 0 {
		if err := seed.Validate(); err != nil {
			return postgres.RulesVersion{}, err
		}
		s.rules = append(s.rules, postgres.RulesVersion{Version: 1, Rules: seed, Note: postgres.SeedNote, CreatedAt: time.Now()})
	}
	return s.rules[len(s.rules)-1], nil
}

func (s *fakeStore) RulesByVersion(_ context.Context, n int) (postgres.RulesVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 || n > len(s.rules) {
		return postgres.RulesVersion{}, fmt.Errorf("rules version %d: %w", n, postgres.ErrRulesVersionNotFound)
	}
	return s.rules[n-1], nil
}

// setRules appends a version, as postgres.DB.SetRules.
func (s *fakeStore) setRules(r txn.Rules, note string) postgres.RulesVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := postgres.RulesVersion{Version: len(s.rules) + 1, Rules: r, Note: note, CreatedAt: time.Now()}
	s.rules = append(s.rules, v)
	return v
}
