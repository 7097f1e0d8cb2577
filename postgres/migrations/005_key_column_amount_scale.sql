-- run_lines.id becomes the key every statement joins on: the NFC form of the id as read, with
-- run_lines.id_as_read holding the id as read only when it differs (NULL otherwise, which is
-- nearly always). A join on a plain column uses the primary keys of transactions, tags and
-- annotations; a join on coalesce(id_nfc, id) could not. Outputs and the error report print
-- coalesce(id_as_read, id), the id as read.
ALTER TABLE run_lines ADD COLUMN id_as_read text;
UPDATE run_lines SET id_as_read = id, id = id_nfc WHERE id_nfc IS NOT NULL AND id_nfc <> id;
ALTER TABLE run_lines DROP COLUMN id_nfc;

-- Amounts are stored with two decimals (numeric scale 2: 12.50, not 12.5), so that amount::text
-- prints them as the outputs want without a round() per row. Values are unchanged: amounts are
-- read with at most two decimals.
UPDATE run_lines SET amount = round(amount, 2) WHERE scale(amount) <> 2;
UPDATE transactions SET amount = round(amount, 2) WHERE scale(amount) <> 2;
