package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// A run applies one version of the rules (postgres.RulesVersion), read once when its ingestion
// starts: Ingest resolves the current version (version 1 is made from the worker's Rules, its
// TXFLOW_* settings, when there is none), checks amounts against its limit and returns it in
// IngestResult.RulesVersion; the workflow passes it in every ChunkInput, and Tag and Annotate
// apply that version, whatever the worker's own settings. A chunk input without a version (a
// run started before versions existed) applies the worker's Rules.

// currentRules returns the current version of the rules, making version 1 from a.Rules when there
// is none, and keeps it in the cache.
func (a *Activities) currentRules(ctx context.Context) (postgres.RulesVersion, error) {
	v, err := a.DB.CurrentRules(ctx, a.Rules)
	if err != nil {
		return postgres.RulesVersion{}, fmt.Errorf("current rules: %w", err)
	}
	a.rulesCache.Store(v.Version, v.Rules)
	return v, nil
}

// rulesOf returns version n of the rules; a.Rules for 0 (no version). Versions never change, so
// each is read from the database once per worker. A version the database does not have is a
// non-retryable ErrTypeConfig error: no retry finds it (the run was started against another
// database).
func (a *Activities) rulesOf(ctx context.Context, n int) (txn.Rules, error) {
	if n == 0 {
		return a.Rules, nil
	}
	if r, ok := a.rulesCache.Load(n); ok {
		return r.(txn.Rules), nil
	}
	v, err := a.DB.RulesByVersion(ctx, n)
	if errors.Is(err, postgres.ErrRulesVersionNotFound) {
		return txn.Rules{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("rules version %d is not in the database", n), ErrTypeConfig, err)
	}
	if err != nil {
		return txn.Rules{}, fmt.Errorf("rules version %d: %w", n, err)
	}
	a.rulesCache.Store(n, v.Rules)
	return v.Rules, nil
}
