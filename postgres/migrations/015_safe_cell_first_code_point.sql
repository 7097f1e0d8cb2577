-- txflow_safe_cell, as in 003, tests the first character by its code point (ascii(), an integer)
-- instead of comparing left(s, 1), a new text value, with six strings: the export calls it five
-- times per line, and at 1,000,000 lines that was about 0.5 s of the dump's 4 s in PostgreSQL.
-- The same rule: a value starting with = + - @ TAB or CR gets a leading apostrophe, except a plain
-- number (a sign, then groups of ASCII digits separated by single space, U+00A0, U+202F,
-- apostrophe, comma or dot characters). ascii('') is 0, ascii(NULL) is NULL: both are returned as
-- they are. It must stay identical to txn.SafeCell, and not STRICT, so that the planner inlines it.
CREATE OR REPLACE FUNCTION txflow_safe_cell(s text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN ascii(s) IN (61, 43, 45, 64, 9, 13) -- = + - @ TAB CR
             AND (ascii(s) NOT IN (43, 45) OR s !~ E'^[-+][0-9]+([ \\u00a0\\u202f'',.][0-9]+)*$')
        THEN '''' || s
        ELSE s END $$;
