"""Read scaling: a streaming hot standby scores, and scoring never writes.

The standby is a base backup of the whole test cluster taken inside the test,
after its data is set up, and stopped at the end.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import trained
from psycopg.types.json import Jsonb
from sklearn.linear_model import Ridge

from pgml_trigger import upload


@pytest.fixture
def cluster(server):
    if server["kind"] != "local cluster":
        pytest.skip(f"a standby is built from the local cluster fixture; this server comes from {server['kind']}")
    return server["cluster"]


def _replayed(primary, standby, timeout: float = 60) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + timeout
    while not standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]:
        assert time.monotonic() < deadline, f"the standby did not replay up to {lsn}"
        time.sleep(0.05)


def test_a_standby_scores_and_sees_new_versions_once_replayed(cluster, conn):
    X, y = trained.diabetes()
    first, second = trained.diabetes_ridge(), Ridge(alpha=5.0).fit(X, y)
    upload(conn, "reg", first, alias="production")
    row = list(X.iloc[7])
    expected = [float(model.predict(X.iloc[[7]])[0]) for model in (first, second)]

    replica = cluster.standby()
    try:
        with psycopg.connect(replica.dsn(conn.info.dbname), autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone(
                ) == (True, "on")
            assert standby.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [row]).fetchone() == (
                expected[0],)
            assert standby.execute("SELECT pgml_trigger.predict('reg', %s)", [Jsonb(X.iloc[7].to_dict())]).fetchone(
                ) == (expected[0],)
            assert standby.execute("SELECT * FROM pgml_trigger.resolve_model('reg')").fetchone() == ("reg", 1)

            upload(conn, "reg", second)
            conn.execute("SELECT pgml_trigger.set_alias('reg', 'production', 2)")
            _replayed(conn, standby)
            # The same session notices on its next statement; a new one sees it from the start.
            assert standby.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [row]).fetchone() == (
                expected[1],)
            with psycopg.connect(replica.dsn(conn.info.dbname), autocommit=True) as fresh:
                assert fresh.execute("SELECT pgml_trigger.predict('reg@1', %s::float8[]), "
                                     "pgml_trigger.predict('reg', %s::float8[])", [row, row]).fetchone() == tuple(
                    expected)
            assert standby.execute("SELECT name, version, loads FROM pgml_trigger.cache_info() ORDER BY version"
                                   ).fetchall() == [("reg", 1, 1), ("reg", 2, 1)]
    finally:
        replica.stop()


def test_scoring_never_writes_in_a_read_only_transaction(conn, dsn):
    upload(conn, "reg", trained.diabetes_ridge(), alias="production")
    upload(conn, "iris", trained.iris_text_labels()[0])
    X, _ = trained.diabetes()
    with psycopg.connect(dsn, autocommit=True, options="-c default_transaction_read_only=on") as read_only:
        # The first call in this backend also imports the package and loads the model.
        assert read_only.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [list(X.iloc[0])]).fetchone() == (
            float(trained.diabetes_ridge().predict(X.iloc[[0]])[0]),)
        assert read_only.execute("SELECT pgml_trigger.predict_label('iris', ARRAY[5.1, 3.5, 1.4, 0.2]), "
                                 "cardinality(pgml_trigger.predict_proba('iris', ARRAY[5.1, 3.5, 1.4, 0.2]))"
                                 ).fetchone() == ("setosa", 3)
        assert read_only.execute("SELECT count(*) FROM pgml_trigger.cache_info()").fetchone() == (2,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            read_only.execute("SELECT pgml_trigger.set_alias('reg', 'staging', 1)")
        conn.execute("SELECT pgml_trigger.set_alias('reg', 'staging', 1)")
        assert read_only.execute("SELECT * FROM pgml_trigger.resolve_model('reg@staging')").fetchone() == ("reg", 1)
