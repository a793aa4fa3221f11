"""The DBA's installer: make a PostgreSQL database score models with pgml_trigger.

Run on the database host, as a user who may write the server's extension directory (root). Safe to
run again at any time. In order, it:

1. checks the server (13 or newer, plpython3u available; installs the OS package when run as root on
   the database host with apt);
2. writes the extension's files (pgml_trigger/admin/extension.py) into the server's extension directory,
   ``pg_config --sharedir``/extension;
3. in the database, under an advisory lock: ``CREATE EXTENSION pgml_trigger``, or ``ALTER EXTENSION
   pgml_trigger UPDATE`` when an older version is there. Schema first: updates only add, so backends still
   running the old package keep working while the environment is replaced, and the new package
   finds the schema it needs;
4. asks PL/Python which interpreter it embeds and builds a virtual environment with that same
   interpreter, readable by the server's OS user, holding this package and its runtime dependencies,
   and the model libraries (xgboost, lightgbm, catboost) named by ``--with`` or, by default, those the
   installing Python has: the server needs them only for models that are not scored as ONNX;
5. points the database at it (ALTER DATABASE ... SET pgml_trigger.python_path) and makes it the
   host's default (the file pgml_trigger.python_path in the extension directory), which databases
   without the setting use: a database restored from a dump scores at once;
6. checks that ``SELECT pgml_trigger.version()`` answers from inside the server.

Needs only psycopg in the installing process; scikit-learn and friends go into the server's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..errors import InstallError
from ..libraries import MODEL_LIBRARIES, installed_version
from ..sqlfiles import query
from . import extension

MIN_SERVER_VERSION = 130000
# Server-side copies of these are pinned to the installing process's versions
# when it has them, so models pickled here load there unchanged (and ONNX graphs
# converted here run on the same onnxruntime that checked them at upload).
PINNED_LIBRARIES = ("numpy", "scipy", "scikit-learn", "joblib", "pandas", "threadpoolctl",
                    "onnxruntime", "skl2onnx", "onnx", "protobuf", "skops",
                    # the model libraries, where --with puts them into the environment
                    *MODEL_LIBRARIES)


@dataclass
class InstallReport:
    server_version: str
    interpreter: str
    python_path: str
    extension_version: str
    action: str  # created, updated from X, already current
    extension_dir: str | None  # where the extension's files were written; None: not by this install
    smoke_version: str


def default_venv_dir(python_version: str) -> Path:
    if os.geteuid() == 0:
        return Path("/opt/pgml_trigger") / f"python{python_version}"
    return Path.home() / ".local" / "share" / "pgml_trigger" / f"python{python_version}"


def project_root() -> Path | None:
    """The source tree this package was imported from, if it was (a checkout or editable install)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def install(dsn: str, *, venv: Path | None = None, python_path: str | None = None, source: str | None = None,
            allow_apt: bool = True, default_path: bool = True, host_files: bool = True,
            with_libraries: list[str] | None = None, log=print) -> InstallReport:
    """``default_path=False`` leaves the host's default environment (the file beside the control file) alone;
    ``host_files=False`` writes nothing into the server's directories (an image that has them already);
    ``with_libraries``: the model libraries (xgboost, lightgbm, catboost) to put into the server's
    environment, for models that are not scored as ONNX; default: those of them the installing Python has."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        server = _check_server(conn, allow_apt, log)
        conn.execute(query("install_plpython"))
        extension_dir = Path(server["sharedir"]) / "extension"
        if host_files:
            write_extension_files(extension_dir, log)
        action = create_or_update(conn, log)
        conn.execute(query("install_probe"))
        probe = json.loads(conn.execute(query("install_probe_call")).fetchone()[0])
        py_version = "{}.{}".format(*probe["version"][:2])
        interpreter = _interpreter(probe)
        log(f"PL/Python embeds Python {'.'.join(map(str, probe['version']))} ({interpreter})")
        if python_path is None:
            venv = venv or default_venv_dir(py_version)
            libraries = model_libraries(with_libraries)
            python_path = str(_build_environment(interpreter, venv, source, libraries, allow_apt, log))
        log(f"server imports pgml_trigger from {python_path}")
        if default_path and host_files:
            extension.write_default_python_path(extension_dir, python_path)
            log(f"default environment for databases without pgml_trigger.python_path: {python_path}")
        from psycopg import sql

        conn.execute(sql.SQL(query("install_python_path")).format(
            database=sql.Identifier(server["database"]), path=sql.Literal(python_path)))
    with psycopg.connect(dsn, autocommit=True) as fresh:  # a new backend reads the new setting
        smoke_version = fresh.execute(query("install_smoke")).fetchone()[0]
    expected = _installed_version(python_path)
    if smoke_version != expected:
        raise InstallError(f"smoke test failed: the server imports pgml_trigger {smoke_version}, "
                           f"but {expected} was installed into {python_path}")
    log(f"smoke test passed: SELECT pgml_trigger.version() = {smoke_version}")
    return InstallReport(server_version=server["version"], interpreter=str(interpreter), python_path=python_path,
                         extension_version=__version__, action=action,
                         extension_dir=str(extension_dir) if host_files else None, smoke_version=smoke_version)


def write_extension_files(extension_dir: Path, log=print) -> None:
    """The control file and scripts, where the server looks for them; only files that differ are written."""
    if not extension_dir.is_dir():
        raise InstallError(f"the server's extension directory {extension_dir} is not on this machine",
                           hint="run the installer on the database host")
    try:
        written = extension.write(extension_dir)
    except PermissionError:
        raise InstallError(f"cannot write the extension's files into {extension_dir}",
                           hint="run the installer as root (or as the owner of that directory)") from None
    log(f"extension files in {extension_dir}: {', '.join(written) or 'all current'}")


def create_or_update(conn, log=print) -> str:
    """CREATE EXTENSION or ALTER EXTENSION ... UPDATE; what was done."""
    with conn.transaction():
        conn.execute(query("install_lock"))
        version = conn.execute(query("install_state")).fetchone()[0]
        if version == __version__:
            action = f"pgml_trigger {version} already installed"
        elif version is not None:
            conn.execute(query("install_update"))
            action = f"updated pgml_trigger {version} to {__version__}"
        else:
            conn.execute(query("install_create"))
            action = f"created the extension pgml_trigger {__version__}"
        conn.execute(query("install_rewrite"))
    log(action)
    return action


def _check_server(conn, allow_apt: bool, log) -> dict:
    server = conn.execute(query("install_server")).fetchone()
    info = dict(zip(("version_num", "version", "plpython_available", "is_superuser", "database"), server))
    if info["version_num"] < MIN_SERVER_VERSION:
        raise InstallError(f"PostgreSQL {info['version']} is too old; pgml_trigger needs 13 or newer")
    if not info["is_superuser"]:
        raise InstallError("the installer must connect as a superuser (CREATE EXTENSION pgml_trigger needs one, "
                           "as does setting pgml_trigger.python_path for the database)")
    log(f"PostgreSQL {info['version']}, database {info['database']}")
    info["sharedir"] = conn.execute(query("install_sharedir")).fetchone()[0]
    if not info["plpython_available"]:
        major = info["version_num"] // 10000
        package = f"postgresql-plpython3-{major}"
        if not (allow_apt and _can_apt(major)):
            raise InstallError(f"plpython3u is not available on this server; install the OS package {package} "
                               "on the database host (e.g. apt-get install " + package + ") and run this again")
        log(f"plpython3u missing: installing {package} with apt-get")
        _apt_install(package)
        if not conn.execute(query("install_server")).fetchone()[2]:
            raise InstallError(f"{package} was installed but the server still has no plpython3u")
    return info


def _can_apt(major: int) -> bool:
    # Only on the database host itself: its server files are where apt puts them.
    return (os.geteuid() == 0 and shutil.which("apt-get") is not None
            and Path(f"/usr/lib/postgresql/{major}/lib").is_dir())


def _apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(command, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise InstallError(f"apt-get install {' '.join(packages)} failed:\n{done.stderr[-2000:]}")


def _interpreter(probe: dict) -> Path:
    major, minor = probe["version"][:2]
    candidates = [Path(probe["base_prefix"]) / "bin" / f"python{major}.{minor}", Path(probe["executable"])]
    for candidate in candidates:
        if candidate.name.startswith("python") and candidate.exists():
            return candidate
    raise InstallError(f"cannot find the interpreter PL/Python embeds (Python {major}.{minor} under "
                       f"{probe['base_prefix']}) on this machine; run the installer on the database host, "
                       "or build an environment there and pass --python-path")


def model_libraries(requested: list[str] | None) -> list[str]:
    """The model libraries to install into the server's environment (see install())."""
    known = MODEL_LIBRARIES
    if requested is None:
        return [name for name in known if name in _local_versions()]
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise InstallError(f"--with names {', '.join(unknown)}; pgml_trigger knows the model libraries "
                           f"{', '.join(known)}")
    return list(dict.fromkeys(requested))


def _build_environment(interpreter: Path, venv: Path, source: str | None, libraries: list[str], allow_apt: bool,
                       log) -> Path:
    source = source or (str(project_root()) if project_root() else None)
    if source is None:
        raise InstallError("no package source to install into the server's environment; pass --source "
                           "(a pgml_trigger checkout or wheel)")
    python = venv / "bin" / "python"
    if not _venv_matches(venv, interpreter):
        log(f"creating virtual environment {venv} with {interpreter}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        _create_venv(interpreter, venv, allow_apt)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="pgml_trigger-pins-", delete=False) as pins:
        pins.write("".join(f"{name}=={version}\n" for name, version in _local_versions().items()))
    try:
        log(f"installing {source} and its dependencies into {venv}"
            + (f", with {', '.join(libraries)}" if libraries else ""))
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, "--constraint", pins.name, source, *libraries])
        # A local source keeps its version number across edits: reinstall it, not its dependencies.
        _run([*pip, "--no-deps", "--force-reinstall", source])
    finally:
        os.unlink(pins.name)
    site_packages = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    _make_readable(venv)
    return site_packages


def _venv_matches(venv: Path, interpreter: Path) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    want = subprocess.run([str(interpreter), "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
    have = subprocess.run([str(python), "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
    return have.returncode == 0 and have.stdout == want.stdout


def _create_venv(interpreter: Path, venv: Path, allow_apt: bool) -> None:
    command = [str(interpreter), "-m", "venv", "--clear", str(venv)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 0:
        return
    package = f"{interpreter.name}-venv"  # Debian splits ensurepip out, e.g. python3.11-venv
    if allow_apt and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install(package)
        _run(command)
        return
    raise InstallError(f"cannot create a virtual environment with {interpreter}: {done.stderr.strip()}",
                       hint=f"install the OS package {package}")


def _local_versions() -> dict[str, str]:
    versions = {name: installed_version(name) for name in PINNED_LIBRARIES}
    return {name: version for name, version in versions.items() if version is not None}


def _installed_version(python_path: str) -> str:
    found = list(metadata.distributions(path=[python_path], name="pgml_trigger"))
    return found[0].version if found else __version__


def _make_readable(venv: Path) -> None:
    """The server's OS user must read the environment and walk every directory above it."""
    for directory, _, files in os.walk(venv):
        os.chmod(directory, os.stat(directory).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
                 | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | stat.S_IRGRP | stat.S_IROTH)
    for parent in venv.resolve().parents:
        mode = os.stat(parent).st_mode
        if not mode & stat.S_IXOTH and os.access(parent, os.W_OK):
            os.chmod(parent, mode | stat.S_IXOTH)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return done.stdout
