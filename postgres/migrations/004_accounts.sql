-- Accounts: a bank's transaction id is unique within one account, not across accounts, so a
-- transaction is keyed by (account, id). Everything stored before gets account 'default'
-- (txn.DefaultAccount). Adding a column with a constant default rewrites no table; the defaults
-- are dropped afterwards so that every new row names its account explicitly.

-- runs.account: the run's account, for lines without their own; has_account_column: the file had
-- an account column, so its outputs carry one too.
ALTER TABLE runs
    ADD COLUMN account            text NOT NULL DEFAULT 'default',
    ADD COLUMN has_account_column boolean NOT NULL DEFAULT false;
ALTER TABLE runs ALTER COLUMN account DROP DEFAULT;

-- transactions.error: the error (amount_too_high) of the line that stored the transaction, so an
-- account's export needs no run line.
ALTER TABLE transactions ADD COLUMN account text NOT NULL DEFAULT 'default', ADD COLUMN error text;
UPDATE transactions t SET error = rl.error
FROM run_lines rl
WHERE rl.run_id = t.first_run_id AND coalesce(rl.id_nfc, rl.id) = t.id AND rl.error IS NOT NULL;
ALTER TABLE transactions DROP CONSTRAINT transactions_pkey, ADD PRIMARY KEY (account, id);
ALTER TABLE transactions ALTER COLUMN account DROP DEFAULT;

ALTER TABLE run_lines ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE run_lines ALTER COLUMN account DROP DEFAULT;
ALTER TABLE rejected_rows ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE rejected_rows ALTER COLUMN account DROP DEFAULT;

-- Results are keyed like transactions: (account, transaction_id).
ALTER TABLE tags ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE tags DROP CONSTRAINT tags_pkey, ADD PRIMARY KEY (account, transaction_id);
ALTER TABLE tags ALTER COLUMN account DROP DEFAULT;
ALTER TABLE annotations ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE annotations DROP CONSTRAINT annotations_pkey, ADD PRIMARY KEY (account, transaction_id);
ALTER TABLE annotations ALTER COLUMN account DROP DEFAULT;
