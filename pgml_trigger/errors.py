"""Every error pgml_trigger raises, each bound to the SQLSTATE a SQL caller sees.

The server entry points (server/entry.py) turn these into PostgreSQL errors
with the class's SQLSTATE, so clients can catch what they mean
(psycopg.errors.UndefinedColumn for a missing feature, and so on). The
uploader raises the same classes in the client process.
"""

from __future__ import annotations


class PgmlTriggerError(Exception):
    """Base class; ``sqlstate`` is what PostgreSQL reports for it."""

    sqlstate = "XX000"

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint


class InvalidModel(PgmlTriggerError, ValueError):
    """The object offered for upload cannot be scored (not fitted, no predict, ...)."""

    sqlstate = "22023"  # invalid_parameter_value


class FeatureMissing(PgmlTriggerError, KeyError):
    sqlstate = "42703"  # undefined_column

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class FeatureTypeMismatch(PgmlTriggerError, TypeError):
    sqlstate = "42804"  # datatype_mismatch


class FeatureCountMismatch(PgmlTriggerError, ValueError):
    sqlstate = "22023"  # invalid_parameter_value


class FeatureMissingValue(PgmlTriggerError, ValueError):
    """A NULL (or NaN) feature given to a model that does not accept missing values."""

    sqlstate = "22004"  # null_value_not_allowed


class FeatureOutOfRange(PgmlTriggerError, ValueError):
    sqlstate = "22003"  # numeric_value_out_of_range


class FeatureAmbiguous(PgmlTriggerError, ValueError):
    """A row holding two columns of a feature's name (a join's row): which one the model should take is unclear."""

    sqlstate = "42702"  # ambiguous_column


class WrongModelKind(PgmlTriggerError, TypeError):
    """predict_proba on a regressor, predict on text class labels, ..."""

    sqlstate = "42809"  # wrong_object_type


class ModelRejectedInput(PgmlTriggerError, ValueError):
    """The estimator itself refused the input (e.g. an unknown category)."""

    sqlstate = "22000"  # data_exception


class ModelCorrupted(PgmlTriggerError):
    """The stored payload does not match its recorded checksum."""

    sqlstate = "XX001"  # data_corrupted


class ModelLoadFailed(PgmlTriggerError):
    """The payload is intact but this server cannot deserialize it (missing module, ...)."""

    sqlstate = "55000"  # object_not_in_prerequisite_state


class ModelSignatureInvalid(ModelCorrupted):
    """The payload lacks the HMAC the database's key requires, or its HMAC does not match."""


class FormatNotAllowed(PgmlTriggerError):
    """The database's pgml_trigger.allowed_formats does not let this payload be deserialized here."""

    sqlstate = "42501"  # insufficient_privilege


class UntrustedContent(PgmlTriggerError):
    """A skops payload holds types outside the allow-list (pgml_trigger.formats.SKOPS_TRUSTED)."""

    sqlstate = "42501"  # insufficient_privilege


class LibraryVersionMismatch(PgmlTriggerError):
    """Under pgml_trigger.strict_versions, the model was saved with another scikit-learn than the server's."""

    sqlstate = "55000"  # object_not_in_prerequisite_state


class UploadRefused(PgmlTriggerError):
    """The server could not load or score a version being uploaded, so it was not stored.

    Carries the SQLSTATE of the server's error (55000 for a missing module, 42501 for an untrusted type, ...).
    """

    sqlstate = "55000"  # object_not_in_prerequisite_state

    def __init__(self, message: str, *, sqlstate: str | None = None, detail: str | None = None,
                 hint: str | None = None):
        super().__init__(message, detail=detail, hint=hint)
        if sqlstate:
            self.sqlstate = sqlstate


class AttachmentStale(PgmlTriggerError):
    """The model behind a trigger now expects other features than the trigger passes."""

    sqlstate = "55000"  # object_not_in_prerequisite_state


class InstallError(PgmlTriggerError):
    """The installer cannot go on; the message says what the DBA must do."""

    sqlstate = "55000"


class MissingExtra(PgmlTriggerError, ImportError):
    """The uploader needs an optional dependency (an extra of the pgml_trigger package) that is not installed."""

    sqlstate = "0A000"  # feature_not_supported


class ModelTooLarge(PgmlTriggerError):
    """A payload larger than a backend may hold (pgml_trigger.model_cache_mb)."""

    sqlstate = "54000"  # program_limit_exceeded


class ModelOutOfMemory(PgmlTriggerError):
    """Deserializing or building the model ran out of memory; the backend goes on."""

    sqlstate = "53200"  # out_of_memory


class NotSupported(PgmlTriggerError):
    """What was asked has no exact method for this model (e.g. explain() of a kernel SVM or a neural network)."""

    sqlstate = "0A000"  # feature_not_supported


class NoExplainer(PgmlTriggerError):
    """The version was stored without what explain() needs (e.g. a linear model uploaded without a sample)."""

    sqlstate = "55000"  # object_not_in_prerequisite_state


class InvalidArgument(PgmlTriggerError, ValueError):
    """An argument out of its range (e.g. explain()'s top_k below 1)."""

    sqlstate = "22023"  # invalid_parameter_value
