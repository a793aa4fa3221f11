-- version, created_at and created_by are set by the models_before_insert trigger.
INSERT INTO pgml_trigger.models (name, version, format, payload, sha256, task, classes, feature_names, feature_types,
                                 accepts_nan, input_kind, python_version, sklearn_version, numpy_version,
                                 joblib_version, description, compiled_format, compiled_payload, compiled_sha256,
                                 compiled_handles_nan, agreement)
VALUES (%(name)s, 0, %(format)s, %(payload)b, %(sha256)s, %(task)s, %(classes)s, %(feature_names)s,
        %(feature_types)s, %(accepts_nan)s, %(input_kind)s, %(python_version)s, %(sklearn_version)s,
        %(numpy_version)s, %(joblib_version)s, %(description)s, %(compiled_format)s, %(compiled_payload)b,
        %(compiled_sha256)s, %(compiled_handles_nan)s, %(agreement)s)
RETURNING version
