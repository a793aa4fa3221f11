"""The per-backend model cache stays within pgml_trigger.model_cache_mb: least recently used out, RSS bounded."""

from __future__ import annotations

from functools import cache

import trained
from psycopg import sql
from sklearn.ensemble import ExtraTreesClassifier

from pgml_trigger import upload

LIMIT_MB = 3
MODELS = 24
# What backend RSS may grow by beyond the cache's bound while models come and go: a deserialized forest
# takes more memory than its payload, and the allocator keeps freed memory (measured: about 30 MB; see
# the printed figures).
OVERHEAD_MB = 32


@cache
def _forest(seed: int):
    X, y = trained.breast_cancer()
    return ExtraTreesClassifier(n_estimators=100, random_state=seed).fit(X, y)  # about 1 MB as joblib


def _rss_mb(conn) -> float:
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_least_recently_used_models_are_evicted_and_rss_stays_bounded(server, conn, connect):
    if server["kind"] == "testcontainers":
        import pytest

        pytest.skip("reads the backend's /proc entry on this host")
    X, _ = trained.breast_cancer()
    for seed in range(MODELS):
        upload(conn, f"rf{seed}", _forest(seed), compile=False)  # joblib payloads, deserialized on load
    sizes = dict(conn.execute("SELECT name, octet_length(payload) FROM pgml_trigger.models").fetchall())
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.model_cache_mb = {}").format(
        sql.Identifier(conn.info.dbname), sql.Literal(LIMIT_MB)))
    session = connect()  # the limit is read once per backend
    row = list(X.iloc[0])
    predict = "SELECT pgml_trigger.predict(%s, %s::float8[])"

    def score(name: str) -> None:
        assert session.execute(predict, [name, row]).fetchone()[0] == float(_forest(int(name[2:])).predict(
            X.iloc[[0]])[0])

    score("rf0")
    baseline = _rss_mb(session)
    after_round = []
    for _ in range(3):
        for seed in range(MODELS):
            score(f"rf{seed}")
        after_round.append(_rss_mb(session))
    held = session.execute("SELECT name, payload_bytes, loads FROM pgml_trigger.cache_info()").fetchall()
    limit = LIMIT_MB * 1024 * 1024
    assert sum(size for _, size, _ in held) <= limit
    last = [f"rf{seed}" for seed in range(MODELS - len(held), MODELS)]
    assert [name for name, _, _ in held] == last  # the most recently used, oldest first
    assert all(loads == 3 for _, _, loads in held)  # each evicted and loaded again on every round

    # Using a model makes it the most recently used: the next load evicts the other one.
    score(last[0])
    score("rf0")
    names = [name for (name,) in session.execute("SELECT name FROM pgml_trigger.cache_info()")]
    assert names[-2:] == [last[0], "rf0"]

    # The same loads in a backend whose cache holds every model, for comparison.
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.model_cache_mb = 1024").format(
        sql.Identifier(conn.info.dbname)))
    session = connect()
    score("rf0")
    unbounded_baseline = _rss_mb(session)
    for seed in range(MODELS):
        score(f"rf{seed}")
    unbounded = _rss_mb(session) - unbounded_baseline
    assert len(session.execute("SELECT * FROM pgml_trigger.cache_info()").fetchall()) == MODELS

    total = sum(sizes.values()) / 2**20
    growth = [round(rss - baseline, 1) for rss in after_round]
    print(f"\ncache limit {LIMIT_MB} MB; {MODELS} models of {min(sizes.values()) / 2**20:.2f}-"
          f"{max(sizes.values()) / 2**20:.2f} MB each ({total:.1f} MB of payload in all), each loaded 3 times; "
          f"held at the end: {len(held)} ({sum(s for _, s, _ in held) / 2**20:.2f} MB). Backend RSS after the "
          f"first model {baseline:.1f} MB; growth after each round of {MODELS} loads: {growth} MB. A backend "
          f"that keeps all {MODELS}: growth {unbounded:.1f} MB")
    # Bounded: RSS stops growing after the first round (allocator slack, not models), and stays well
    # below what keeping every model costs.
    assert growth[2] - growth[0] <= 2
    assert growth[2] <= LIMIT_MB + OVERHEAD_MB < unbounded
