-- The migration ledger, created before the first migration runs.
CREATE SCHEMA IF NOT EXISTS pgml_trigger;
CREATE TABLE IF NOT EXISTS pgml_trigger.migrations (
    version    text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
