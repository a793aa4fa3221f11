"""The ``pgml-trigger`` command: install, uninstall, upload, export, import, status, doctor, replicate, score, demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import PgmlTriggerError

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
LOADABLE_SUFFIXES = (*PICKLE_SUFFIXES, ".skops", ".onnx")


def _dsn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=os.environ.get("PGML_TRIGGER_DSN", ""),
                        help="libpq connection string (default: $PGML_TRIGGER_DSN, then the PG* variables)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgml-trigger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    install = commands.add_parser("install", help="install or upgrade pgml_trigger in a database (DBA)")
    _dsn_option(install)
    install.add_argument("--venv", type=Path, help="where to build the server's Python environment "
                         "(default: /opt/pgml_trigger/pythonX.Y as root, else ~/.local/share/pgml_trigger/pythonX.Y)")
    install.add_argument("--python-path", help="use this existing site-packages directory instead of building one")
    install.add_argument("--source", help="what pip installs into the environment (default: this checkout)")
    install.add_argument("--no-apt", action="store_true", help="never install OS packages, only say which are missing")
    install.add_argument("--with", dest="with_libraries", metavar="LIBRARIES",
                         type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
                         help="model libraries to install into the server's environment, comma-separated "
                              "(xgboost, lightgbm, catboost; '' for none); default: those this Python has")
    install.add_argument("--no-default-path", action="store_true",
                         help="do not make this environment the host's default for databases without a setting")
    install.add_argument("--no-host-files", action="store_true",
                         help="write nothing into the server's extension directory (it has this version's files)")

    uninstall = commands.add_parser("uninstall", help="remove pgml_trigger from a database (DBA)")
    _dsn_option(uninstall)
    uninstall.add_argument("--detach", action="store_true", help="also remove attached scoring triggers")
    uninstall.add_argument("--remove-environment", action="store_true",
                           help="also delete the server's Python environment (shared by other databases?)")

    upload = commands.add_parser("upload", help="upload a saved model file (.joblib, .pkl, .skops, .onnx), an MLflow "
                                 "model directory, or an MLflow models:/ or runs:/ URI")
    upload.add_argument("file", metavar="FILE_OR_URI")
    upload.add_argument("--name", required=True)
    upload.add_argument("--alias")
    upload.add_argument("--description")
    upload.add_argument("--feature-names", help="comma-separated, for models fitted on bare arrays (and ONNX graphs)")
    upload.add_argument("--format", choices=("joblib", "skops"),
                        help="how to store a scikit-learn model (default: skops for .skops files, else joblib)")
    upload.add_argument("--classes", help="comma-separated class labels of an ONNX classifier or a native booster "
                                          "(xgboost.Booster, ...), in probability order")
    upload.add_argument("--task", choices=("classification", "regression"),
                        help="what an ONNX graph is, where its outputs leave it open (a network's one output column)")
    upload.add_argument("--hmac-key-file", type=Path,
                        help="sign the upload with this key (default: $PGML_TRIGGER_HMAC_KEY_FILE)")
    _dsn_option(upload)

    export = commands.add_parser("export", help="write a model version and its metadata to a file")
    export.add_argument("model", help="name, name@version or name@alias")
    export.add_argument("file", type=Path)
    _dsn_option(export)

    import_ = commands.add_parser("import", help="add an exported model version to this database")
    import_.add_argument("file", type=Path)
    _dsn_option(import_)

    status = commands.add_parser("status", help="models, aliases, scoring triggers and drift flags")
    _dsn_option(status)

    doctor = commands.add_parser("doctor", help="models that would not load here, or under other library versions")
    _dsn_option(doctor)

    replicate = commands.add_parser("replicate", help="scoring databases that receive every model version, alias "
                                    "move and delete from one registry database (logical replication; DBA)")
    replicate.add_argument("--from", dest="registry", required=True,
                           help="the registry database (its servers must reach it with this connection string)")
    replicate.add_argument("--to", dest="targets", action="append", required=True,
                           help="a scoring database with pgml_trigger installed; repeat for several")
    replicate.add_argument("--dry-run", action="store_true", help="print the SQL, run nothing")

    score = commands.add_parser("score", help="score a table's rows on one or more databases at once (e.g. shards)")
    score.add_argument("model", help="name, name@version or name@alias")
    score.add_argument("table")
    score.add_argument("column", help="the output column")
    score.add_argument("--dsn", dest="dsns", action="append", required=True, help="a database; repeat for several")
    score.add_argument("--features", help="comma-separated columns in model order (default: the feature names)")
    score.add_argument("--batch-size", type=int, default=10_000)

    demo = commands.add_parser("demo", help="run the whole product on a throwaway local PostgreSQL")
    demo.add_argument("--dsn", default=None, help="use this database instead of a throwaway cluster")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "install":
            from .admin.install import install

            install(args.dsn, venv=args.venv, python_path=args.python_path, source=args.source,
                    allow_apt=not args.no_apt, default_path=not args.no_default_path,
                    host_files=not args.no_host_files, with_libraries=args.with_libraries)
        elif args.command == "uninstall":
            from .admin.uninstall import uninstall

            uninstall(args.dsn, detach=args.detach, remove_environment=args.remove_environment)
        elif args.command == "upload":
            return _upload(args)
        elif args.command in ("export", "import"):
            _transfer(args)
        elif args.command == "status":
            import psycopg

            from .admin.status import status

            with psycopg.connect(args.dsn, autocommit=True) as conn:
                status(conn)
        elif args.command == "doctor":
            return _doctor(args)
        elif args.command == "score":
            return _score(args)
        elif args.command == "replicate":
            from .admin.replicate import replicate

            replicate(args.registry, args.targets, dry_run=args.dry_run)
        elif args.command == "demo":
            from .demo import run

            run(args.dsn)
    except PgmlTriggerError as exc:
        print(f"pgml-trigger: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


def _score(args) -> int:
    from .admin.replicate import describe_dsn
    from .admin.score_servers import score_servers

    features = args.features.split(",") if args.features else None
    outcomes = score_servers(args.dsns, args.model, args.table, args.column, features=features,
                             batch_size=args.batch_size)
    for outcome in outcomes:
        result = f"{outcome.rows:,} rows" if outcome.error is None else f"failed: {outcome.error}"
        print(f"{describe_dsn(outcome.dsn)}: {result} ({outcome.seconds:.1f} s)")
    return 1 if any(outcome.error is not None for outcome in outcomes) else 0


def _transfer(args) -> None:
    import psycopg

    from .admin.transfer import export_model, import_model

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        if args.command == "export":
            name, version = export_model(conn, args.model, args.file)
            print(f"exported {name}@{version} to {args.file}")
        else:
            name, old, new = import_model(conn, args.file)
            print(f"imported {name}@{old} as {name}@{new}")


def _upload(args) -> int:
    from . import formats
    from .uploader.mlflow_source import is_mlflow_source
    from .uploader.upload import upload

    file = Path(args.file)
    suffix = file.suffix.lower()
    if is_mlflow_source(args.file):  # read through its flavor by upload() (mlflow_source.py)
        model, fmt = args.file, args.format
    elif suffix not in LOADABLE_SUFFIXES:
        print(f"pgml-trigger: {args.file} is not a .joblib, .pkl, .skops or .onnx file, an MLflow model directory "
              "or a models:/ or runs:/ URI", file=sys.stderr)
        return 2
    elif suffix == ".onnx":
        model, fmt = file, "onnx"
    elif suffix == ".skops":  # loaded under the server's allow-list, so what uploads is what will load
        model, fmt = formats.load(file.read_bytes(), "skops"), args.format or "skops"
    else:
        import joblib

        model, fmt = joblib.load(file), args.format or "joblib"  # the user's own file, in their own process
    names = args.feature_names.split(",") if args.feature_names else None
    classes = [_label(text) for text in args.classes.split(",")] if args.classes else None
    key = args.hmac_key_file.read_bytes().rstrip(b"\r\n") if args.hmac_key_file else None
    version = upload(args.dsn, args.name, model, feature_names=names, alias=args.alias,
                     description=args.description, format=fmt, classes=classes, task=args.task, hmac_key=key,
                     progress=_print_stage)
    print(f"uploaded {args.name}@{version}" + (f" (alias {args.alias})" if args.alias else ""))
    return 0


def _print_stage(stage: str, seconds: float, nbytes: int | None) -> None:
    """An upload's stages as they end, on stderr: a big model takes minutes, and this says where."""
    size = "" if nbytes is None else f", {nbytes / 2**20:,.1f} MiB"
    print(f"  {stage}: {seconds:.2f} s{size}", file=sys.stderr, flush=True)


def _label(text: str):
    """A class label given on the command line: an integer when it reads as one."""
    try:
        return int(text)
    except ValueError:
        return text


def _doctor(args) -> int:
    """One line per model version; exit status 1 when any would not load or is corrupted."""
    import psycopg

    from .sqlfiles import query

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        rows = conn.execute(query("doctor")).fetchall()
    for name, version, fmt, path, allowed, _, error, recorded, server, verdict in rows:
        versions = f"scikit-learn {recorded} (server {server})" if server else "onnx"
        scored = f"scored by {path}" if path else "not loadable"
        line = f"{name}@{version}  {fmt}  {'allowed' if allowed else 'NOT ALLOWED'}  {scored}  {versions}  {verdict}"
        print(line + (f": {error}" if error else ""))
    if not rows:
        print("no models")
    return 0 if all(row[5] and not row[9].startswith("corrupted") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
