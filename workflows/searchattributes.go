package workflows

import (
	"strconv"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The custom search attributes ProcessFile sets, to find runs in the Web UI and with
// `temporal workflow list --query`. They must be registered on the namespace (the dev server
// does it; on a cluster: temporal operator search-attribute create).
var (
	SearchAttrFile   = temporal.NewSearchAttributeKeyKeyword("TxflowFile")   // the file, relative to the input root
	SearchAttrStatus = temporal.NewSearchAttributeKeyKeyword("TxflowStatus") // running, completed or failed
	// SearchAttrAccount is the run's account (ProcessFileInput.Account, txn.DefaultAccount when
	// none was given). With TxflowFile and TxflowStatus, three of the ten Keyword attributes a
	// namespace on SQL visibility allows.
	SearchAttrAccount = temporal.NewSearchAttributeKeyKeyword("TxflowAccount")
	// The counts, set once Ingest completed: which count each carries is listed by activities.Counts.
	SearchAttrRows     = temporal.NewSearchAttributeKeyInt64("TxflowRows")     // Counts.RowsRead
	SearchAttrRejected = temporal.NewSearchAttributeKeyInt64("TxflowRejected") // Counts.Rejected
	SearchAttrErrors   = temporal.NewSearchAttributeKeyInt64("TxflowErrors")   // Counts.InError
	// SearchAttrRulesVersion is the version of the rules the run applies (Summary.RulesVersion),
	// set once Ingest completed. A Keyword, the version's number as text: the three Int
	// attributes SQL visibility allows are the counts above.
	SearchAttrRulesVersion = temporal.NewSearchAttributeKeyKeyword("TxflowRulesVersion")
)

// SearchAttributes lists the custom search attributes above by name, with their types.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	out := map[string]enumspb.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKey{SearchAttrFile, SearchAttrStatus, SearchAttrAccount, SearchAttrRows, SearchAttrRejected, SearchAttrErrors,
		SearchAttrRulesVersion} {
		out[k.GetName()] = k.GetValueType()
	}
	return out
}

// upsertSearchAttributes publishes the summary's file, account, status, counts and rules version.
// The account and the rules version only add values to the same command: runs recorded before
// them replay unchanged. A failure to upsert
// is logged, not fatal: the run itself does not depend on it.
func upsertSearchAttributes(ctx workflow.Context, s *Summary) {
	updates := []temporal.SearchAttributeUpdate{
		SearchAttrFile.ValueSet(s.File),
		SearchAttrStatus.ValueSet(s.Status),
		SearchAttrAccount.ValueSet(s.Account),
	}
	if s.stage(StageIngest).Status != StatusPending && s.stage(StageIngest).Status != StatusRunning {
		updates = append(updates,
			SearchAttrRows.ValueSet(s.RowsRead),
			SearchAttrRejected.ValueSet(s.Rejected),
			SearchAttrErrors.ValueSet(s.InError))
		if s.RulesVersion > 0 {
			updates = append(updates, SearchAttrRulesVersion.ValueSet(strconv.Itoa(s.RulesVersion)))
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

// StartSearchAttributes are the search attributes a ProcessFile run of in is started with: its
// file, account and the running status, which the run would otherwise upsert first. The
// starter and the inbox give them; a lean run (leanChange) started with them does not record
// them again.
func StartSearchAttributes(in ProcessFileInput) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SearchAttrFile.ValueSet(in.File),
		SearchAttrStatus.ValueSet(StatusRunning),
		SearchAttrAccount.ValueSet(in.account()),
	)
}

// startedWithSearchAttributes says whether the run was started with the file, status and account
// of s, its summary at the start.
func startedWithSearchAttributes(ctx workflow.Context, s *Summary) bool {
	sa := workflow.GetTypedSearchAttributes(ctx)
	file, okFile := sa.GetKeyword(SearchAttrFile)
	status, okStatus := sa.GetKeyword(SearchAttrStatus)
	account, okAccount := sa.GetKeyword(SearchAttrAccount)
	return okFile && okStatus && okAccount && file == s.File && status == s.Status && account == s.Account
}
