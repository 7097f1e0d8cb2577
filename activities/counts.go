package activities

import "encoding/json"

// Counts are a run's row counts. Each idea has one name, from the activity that counts it to the
// run's summary (summary.json, the progress query), its notice (alert, event, failure.json), its
// metrics and its search attributes:
//
//	field         JSON key       counted by  metric                 search attribute
//	RowsRead      rows_read      Ingest      -                      TxflowRows
//	Lines         lines          Ingest      -                      -
//	SkippedLines  skipped_lines  Ingest      -                      -
//	DerivedIDs    derived_ids    Ingest      -                      -
//	Ingested      ingested       Ingest      txflow_rows_ingested   -
//	New           new            Ingest      -                      -
//	Rejected      rejected       Ingest      txflow_rows_rejected   TxflowRejected
//	InError       in_error       Ingest      txflow_rows_in_error   TxflowErrors
//	Tagged        tagged         Dump        txflow_rows_tagged     -
//	Annotated     annotated      Dump        txflow_rows_annotated  -
//	Published     published      Publish     -                      -
//
// RowsRead = Ingested + Rejected; InError counts rows among Ingested. The search attributes are
// registered on the namespace under these names (Int; the SQL visibility store allows three).
type Counts struct {
	RowsRead     int64 `json:"rows_read"`     // data records in the file
	Lines        int64 `json:"lines"`         // physical lines in the file
	SkippedLines int64 `json:"skipped_lines"` // lines neither header nor record: preamble, blank lines
	// DerivedIDs counts the accepted records whose id was derived (a file without an id column);
	// absent when none was.
	DerivedIDs int64 `json:"derived_ids,omitempty"`
	Ingested   int64 `json:"ingested"`  // records accepted for this run, in error or not
	New        int64 `json:"new"`       // accepted records not stored before
	Rejected   int64 `json:"rejected"`  // records rejected (unreadable, duplicate, conflicting), listed in the error report
	InError    int64 `json:"in_error"`  // accepted records in error (amount too high), listed in the error report
	Tagged     int64 `json:"tagged"`    // accepted records with a tag in the dump
	Annotated  int64 `json:"annotated"` // accepted records with an annotation in the dump
	// Published counts the messages of the run's new results the broker acknowledged (delivery
	// on, see publish.go); absent when none was to publish.
	Published int64 `json:"published,omitempty"`
}

// ingestResultWire is IngestResult as it crosses Temporal: flat, under the field names it had
// before Counts, so that results recorded in the histories of running workflows, and those of
// workers of an earlier release, are read the same by either side.
type ingestResultWire struct {
	SHA256       string
	RowsRead     int64
	Lines        int64
	SkippedLines int64
	Accepted     int64
	New          int64
	Rejected     int64
	Errors       int64
	MaxSeq       int64
	// AccountColumn is absent from results recorded before accounts existed: false.
	AccountColumn bool `json:",omitempty"`
	// Profile is absent from results recorded before profiles existed, and when none was used.
	Profile string `json:",omitempty"`
	// DerivedIDs is absent from results recorded before derived ids existed, and when there were none.
	DerivedIDs int64 `json:",omitempty"`
	// Pending is absent from results recorded before delivery existed, and when no message is
	// to publish.
	Pending int64 `json:",omitempty"`
	// RulesVersion is absent from results recorded before rules versions existed.
	RulesVersion int `json:",omitempty"`
}

// MarshalJSON encodes the result in its wire form.
func (r IngestResult) MarshalJSON() ([]byte, error) {
	c := r.Counts
	return json.Marshal(ingestResultWire{
		SHA256: r.SHA256, RowsRead: c.RowsRead, Lines: c.Lines, SkippedLines: c.SkippedLines,
		Accepted: c.Ingested, New: c.New, Rejected: c.Rejected, Errors: c.InError, MaxSeq: r.MaxSeq,
		AccountColumn: r.AccountColumn, Profile: r.Profile, DerivedIDs: c.DerivedIDs, Pending: r.Pending,
		RulesVersion: r.RulesVersion,
	})
}

// UnmarshalJSON decodes the result from its wire form.
func (r *IngestResult) UnmarshalJSON(b []byte) error {
	var w ingestResultWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = IngestResult{SHA256: w.SHA256, MaxSeq: w.MaxSeq, AccountColumn: w.AccountColumn, Profile: w.Profile, Pending: w.Pending, RulesVersion: w.RulesVersion, Counts: Counts{
		RowsRead: w.RowsRead, Lines: w.Lines, SkippedLines: w.SkippedLines, DerivedIDs: w.DerivedIDs,
		Ingested: w.Accepted, New: w.New, Rejected: w.Rejected, InError: w.Errors,
	}}
	return nil
}
