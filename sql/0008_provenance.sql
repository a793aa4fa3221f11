-- Where a version came from and what it needs besides scikit-learn, so the server can check a payload's
-- libraries at load as it checks scikit-learn's, and a DBA can trace a version to its registry entry.

ALTER TABLE pgml_trigger.models
    ADD COLUMN library_versions jsonb CONSTRAINT models_library_versions_object
        CHECK (library_versions IS NULL OR jsonb_typeof(library_versions) = 'object'),
    ADD COLUMN source_uri text,
    ADD COLUMN mlflow_version text;
COMMENT ON COLUMN pgml_trigger.models.library_versions IS
    'versions of the model libraries besides scikit-learn that loading the payload needs, e.g. {"xgboost": "2.1.3"}';
COMMENT ON COLUMN pgml_trigger.models.source_uri IS 'where the model was read from: an MLflow models:/ or runs:/ URI, a path';
COMMENT ON COLUMN pgml_trigger.models.mlflow_version IS 'the MLflow version that read the model, for MLflow uploads';

CREATE OR REPLACE VIEW pgml_trigger.model_catalog AS
SELECT m.name, m.version, m.format, m.sha256, octet_length(m.payload)::bigint AS payload_bytes, m.task, m.classes,
       m.feature_names, m.feature_types, m.accepts_nan, m.input_kind, m.python_version, m.sklearn_version,
       m.numpy_version, m.joblib_version, m.description, m.created_at, m.created_by,
       m.scoring_path, m.compiled_format, m.compiled_sha256, octet_length(m.compiled_payload)::bigint AS compiled_bytes,
       m.compiled_handles_nan, m.agreement, m.metrics, m.training_profile,
       m.payload_hmac, m.skops_version, m.onnxruntime_version, m.linear_form,
       m.library_versions, m.source_uri, m.mlflow_version
FROM pgml_trigger.models AS m;

CREATE OR REPLACE VIEW pgml_trigger.model_versions AS
SELECT m.name, m.version, m.format, m.scoring_path, pg_size_pretty(m.payload_bytes) AS size, m.payload_bytes,
       m.sha256,
       coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM pgml_trigger.aliases AS a
                 WHERE a.name = m.name AND a.version = m.version), '{}') AS aliases,
       m.task, m.feature_names, m.python_version, m.sklearn_version, m.numpy_version, m.joblib_version,
       m.metrics, m.agreement, m.description, m.created_at, m.created_by,
       CASE WHEN m.linear_form IS NOT NULL THEN 'sql' ELSE m.scoring_path END AS row_trigger_path,
       m.library_versions, m.source_uri, m.mlflow_version
FROM pgml_trigger.model_catalog AS m;

-- Metadata, like the columns 0003_trust.sql lets pgml_trigger_user read (never the payloads).
GRANT SELECT (library_versions, source_uri, mlflow_version) ON pgml_trigger.models TO pgml_trigger_user;
