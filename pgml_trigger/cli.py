"""The ``pgml-trigger`` command: install, uninstall, upload, export, import, status, demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import PgmlTriggerError

LOADABLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


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

    uninstall = commands.add_parser("uninstall", help="remove pgml_trigger from a database (DBA)")
    _dsn_option(uninstall)
    uninstall.add_argument("--detach", action="store_true", help="also remove attached scoring triggers")
    uninstall.add_argument("--remove-environment", action="store_true",
                           help="also delete the server's Python environment (shared by other databases?)")

    upload = commands.add_parser("upload", help="upload a saved model file (.joblib, .pkl)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", required=True)
    upload.add_argument("--alias")
    upload.add_argument("--description")
    upload.add_argument("--feature-names", help="comma-separated, for models fitted on bare arrays")
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

    demo = commands.add_parser("demo", help="run the whole product on a throwaway local PostgreSQL")
    demo.add_argument("--dsn", default=None, help="use this database instead of a throwaway cluster")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "install":
            from .install import install

            install(args.dsn, venv=args.venv, python_path=args.python_path, source=args.source,
                    allow_apt=not args.no_apt)
        elif args.command == "uninstall":
            from .uninstall import uninstall

            uninstall(args.dsn, detach=args.detach, remove_environment=args.remove_environment)
        elif args.command == "upload":
            return _upload(args)
        elif args.command in ("export", "import"):
            _transfer(args)
        elif args.command == "status":
            import psycopg

            from .status import status

            with psycopg.connect(args.dsn, autocommit=True) as conn:
                status(conn)
        elif args.command == "demo":
            from .demo import run

            run(args.dsn)
    except PgmlTriggerError as exc:
        print(f"pgml-trigger: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


def _transfer(args) -> None:
    import psycopg

    from .transfer import export_model, import_model

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        if args.command == "export":
            name, version = export_model(conn, args.model, args.file)
            print(f"exported {name}@{version} to {args.file}")
        else:
            name, old, new = import_model(conn, args.file)
            print(f"imported {name}@{old} as {name}@{new}")


def _upload(args) -> int:
    import joblib

    from .uploader import upload

    if args.file.suffix.lower() not in LOADABLE_SUFFIXES:
        print(f"pgml-trigger: {args.file} is not a .joblib or .pkl file", file=sys.stderr)
        return 2
    model = joblib.load(args.file)  # the user's own file, loaded in the user's own process
    names = args.feature_names.split(",") if args.feature_names else None
    version = upload(args.dsn, args.name, model, feature_names=names, alias=args.alias,
                     description=args.description)
    print(f"uploaded {args.name}@{version}" + (f" (alias {args.alias})" if args.alias else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
