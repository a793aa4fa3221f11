"""Eight sessions insert into a scored table while another uploads versions and moves the production alias.

Which version scores a statement is resolved once per statement, from the
catalog generation it reads. Under READ COMMITTED a statement may read it
with a snapshot later than its start but never later than the next
statement's, so each INSERT is bracketed by reads of the generation: the
version that scored it must be the one live (where 'production' pointed) at
some generation the admin session committed between the two reads. Every
version predicts ``1000 * version + x + 2 y``, so a score tells which
version made it; it must equal that version's offline prediction (within
the tolerance of the trigger's SQL arithmetic, pgml_trigger/uploader/linear.py), and
all rows of one INSERT are scored by one version.
"""

from __future__ import annotations

import bisect
import random
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from pgml_trigger import upload
from pgml_trigger.uploader.linear import ATOL, RTOL

SESSIONS = 8
SECONDS = 30
ROWS_PER_STATEMENT = 5


def _model(version: int) -> LinearRegression:
    rng = np.random.default_rng(version)
    X = pd.DataFrame(rng.normal(size=(50, 2)), columns=["x", "y"])
    return LinearRegression().fit(X, 1000 * version + X["x"] + 2 * X["y"])


def test_inserts_while_versions_and_alias_move(conn, connect, figure):
    models = {1: _model(1)}
    assert upload(conn, "m", models[1], alias="production") == 1
    conn.execute("CREATE TABLE scored (id bigserial PRIMARY KEY, session int NOT NULL, batch int NOT NULL, "
                 "x float8 NOT NULL, y float8 NOT NULL, score float8)")
    conn.execute("CREATE TABLE catalog_log (generation bigint PRIMARY KEY, live integer NOT NULL)")
    conn.execute("SELECT pgml_trigger.attach('scored', 'm', 'score')")
    conn.execute("INSERT INTO catalog_log SELECT generation, 1 FROM pgml_trigger.catalog_state")

    stop = threading.Event()
    errors: list[BaseException] = []
    brackets: dict[tuple[int, int], tuple[int, int]] = {}
    inserted = [0] * SESSIONS
    sessions = [connect() for _ in range(SESSIONS)]
    admin = connect(autocommit=False)
    versions_uploaded = [1]
    alias_moves = [0]

    def insert(number: int) -> None:
        session = sessions[number]
        rng = random.Random(number)
        batch = 0
        try:
            while not stop.is_set():
                batch += 1
                xs = [rng.uniform(-1, 1) for _ in range(ROWS_PER_STATEMENT)]
                ys = [rng.uniform(-1, 1) for _ in range(ROWS_PER_STATEMENT)]
                before = session.execute("SELECT generation FROM pgml_trigger.catalog_state").fetchone()[0]
                session.execute("INSERT INTO scored (session, batch, x, y) "
                                "SELECT %s, %s, u.x, u.y FROM unnest(%s::float8[], %s::float8[]) AS u(x, y)",
                                [number, batch, xs, ys])
                after = session.execute("SELECT generation FROM pgml_trigger.catalog_state").fetchone()[0]
                brackets[number, batch] = (before, after)
                inserted[number] += ROWS_PER_STATEMENT
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def manage() -> None:
        rng = random.Random(99)
        try:
            while not stop.is_set():
                with admin.transaction():
                    if rng.random() < 0.3:
                        version = upload(admin, "m", _model(len(models) + 1))
                        models[version] = _model(version)
                        versions_uploaded[0] += 1
                    else:
                        live = rng.choice(sorted(models))
                        admin.execute("SELECT pgml_trigger.set_alias('m', 'production', %s)", [live])
                        alias_moves[0] += 1
                    admin.execute("""INSERT INTO catalog_log
                        SELECT s.generation, a.version FROM pgml_trigger.catalog_state AS s, pgml_trigger.aliases AS a
                        WHERE a.name = 'm' AND a.alias = 'production'""")
                time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(SESSIONS)]
    threads.append(threading.Thread(target=manage))
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []

    log = conn.execute("SELECT generation, live FROM catalog_log ORDER BY generation").fetchall()
    rows = conn.execute("SELECT session, batch, x, y, score FROM scored ORDER BY id").fetchall()
    assert len(rows) == sum(inserted)  # no row lost, none extra
    assert {(s, b) for s, b, *_ in rows} == set(brackets)
    live_at = dict(log)  # every generation a session could read was committed by setup or the admin session
    generations = sorted(live_at)
    scored = pd.DataFrame(rows, columns=["session", "batch", "x", "y", "score"])
    scored["version"] = (scored["score"] / 1000).round().astype(int)
    for (session, batch), statement in scored.groupby(["session", "batch"]):
        before, after = brackets[session, batch]
        assert before in live_at and after in live_at
        versions = set(statement["version"])
        assert len(versions) == 1  # one version per statement
        between = generations[bisect.bisect_left(generations, before):bisect.bisect_right(generations, after)]
        assert versions <= {live_at[generation] for generation in between}
    for version, by_version in scored.groupby("version"):
        expected = models[version].predict(by_version[["x", "y"]])
        assert by_version["score"].tolist() == pytest.approx(expected.tolist(), rel=RTOL, abs=ATOL)
    seen_versions = set(scored["version"])

    figure("concurrent rows checked", len(rows))
    figure("versions uploaded during the run", versions_uploaded[0] - 1)
    figure("alias moves during the run", alias_moves[0])
    figure("distinct versions that scored rows", len(seen_versions))
