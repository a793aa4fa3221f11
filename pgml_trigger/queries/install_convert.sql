-- A database the migration ledger set up (through its last migration) joins the extension as it is
-- (sql/ledger/adopt.sql), then updates like any 0.1.0 database.
CREATE EXTENSION pgml_trigger VERSION 'ledger';
ALTER EXTENSION pgml_trigger UPDATE
