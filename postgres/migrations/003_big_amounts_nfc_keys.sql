-- Text comparisons below use normalize() and IS NFC NORMALIZED, which need a UTF8 database.
DO $$
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'txflow needs a UTF8 database, this one is %', current_setting('server_encoding');
    END IF;
END
$$;

-- Amounts of any size: an amount beyond the limit is stored and exported in error, however many
-- digits it has. Unconstrained numeric holds up to 131072 integer digits; numeric(1000,2), the
-- largest precision a typmod allows, would stop at 998. Amounts are parsed with at most two
-- decimals, so no scale is needed to round them; the export formats them with round(amount, 2).
-- Dropping the typmod keeps the stored bytes: no table rewrite.
ALTER TABLE transactions ALTER COLUMN amount TYPE numeric;
ALTER TABLE run_lines ALTER COLUMN amount TYPE numeric;

-- Ids are compared in NFC. run_lines.id and rejected_rows.id stay as read; run_lines.id_nfc holds
-- the NFC form of the id when it differs from it (NULL otherwise, which is nearly always), so the
-- key of a line is coalesce(id_nfc, id). transactions.id, tags.transaction_id and
-- annotations.transaction_id are that key; transactions.id_as_read keeps the id as first read
-- when it differs from the key.
ALTER TABLE run_lines ADD COLUMN id_nfc text;
ALTER TABLE transactions ADD COLUMN id_as_read text;

UPDATE run_lines SET id_nfc = normalize(id, NFC) WHERE id IS NOT NFC NORMALIZED;

-- A transaction stored under a non-NFC id moves to its key, with its tag and annotation, unless
-- the key is already taken by another transaction (both forms were stored as distinct ids before):
-- that one stays the transaction of the key, and the other keeps its id as it was.
CREATE TEMPORARY TABLE txflow_rekey ON COMMIT DROP AS
SELECT DISTINCT ON (normalize(id, NFC)) id AS old_id, normalize(id, NFC) AS new_id
FROM transactions t
WHERE id IS NOT NFC NORMALIZED
  AND NOT EXISTS (SELECT 1 FROM transactions k WHERE k.id = normalize(t.id, NFC))
ORDER BY normalize(id, NFC), created_at, id;

UPDATE transactions t SET id = r.new_id, id_as_read = r.old_id FROM txflow_rekey r WHERE t.id = r.old_id;
UPDATE tags x SET transaction_id = r.new_id FROM txflow_rekey r WHERE x.transaction_id = r.old_id;
UPDATE annotations x SET transaction_id = r.new_id FROM txflow_rekey r WHERE x.transaction_id = r.old_id;

-- txflow_safe_cell guards spreadsheet cells against formula injection: a value starting with
-- = + - @ TAB or CR gets a leading apostrophe, except a plain number: a sign, then groups of ASCII
-- digits separated by single space, U+00A0, U+202F, apostrophe, comma or dot characters, and
-- nothing else (-12.50, +3500,00, -1 234,56). It must stay identical to txn.SafeCell. NULL gives
-- NULL. It is deliberately not STRICT so that the planner inlines it (a STRICT function with a
-- CASE body is called through the SQL-function executor for every value). A value that does not
-- start with one of those characters costs what it did before; the regular expression runs only
-- for values starting with a sign.
CREATE OR REPLACE FUNCTION txflow_safe_cell(s text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN left(s, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
             AND (left(s, 1) NOT IN ('+', '-') OR s !~ E'^[-+][0-9]+([ \\u00a0\\u202f'',.][0-9]+)*$')
        THEN '''' || s
        ELSE s END $$;
