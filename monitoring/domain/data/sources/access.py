"""Whether a data source can be read at all, checked before a run creates anything: files there, URL set, database up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from monitoring.config.data import FileSource, SparkSource, SqlSource
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.data.sources import describe_source
from monitoring.domain.data.sources.tables import matching_files, sql_connection, sql_url

Source = FileSource | SqlSource | SparkSource


def source_problems(
    source: Source, root: Path, what: str, env: Mapping[str, str] | None = None, *, files_may_be_missing: bool = False
) -> list[str]:
    """What is wrong in the config for ``source`` to be read, found without reading it or touching a server.

    Args:
        source: a file or SQL source.
        root: the project root.
        what: the config key of the source (``data.training``), which each problem names.
        env: environment for ``url_env`` (default ``os.environ``).
        files_may_be_missing: a feed whose files land later (ground truth): no file yet is no problem.

    Returns:
        One message per problem, each naming its key: no file matches ``path``; the ``url_env``
        variable is unset; the URL is not one SQLAlchemy understands; a SQLite database file that
        does not exist (connecting would create an empty one).
    """
    if isinstance(source, SparkSource):
        from monitoring.domain.data.sources.spark_tables import spark_problems

        return spark_problems(source, what)
    if isinstance(source, FileSource):
        if files_may_be_missing:
            return []
        try:
            matching_files(source, root, what)
        except DataError:
            return [f"{what}.path: no file matches {source.path!r} under the project root {root}"]
        return []
    key = f"{what}.url_env" if source.url_env else f"{what}.url"
    try:
        url = sql_url(source, root, os.environ if env is None else env)
    except ConfigError as exc:
        return [f"{key}: {problem}" for problem in exc.problems]
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = sqlalchemy.make_url(url)
    except (ArgumentError, ValueError) as exc:
        return [f"{key}: not a usable SQLAlchemy URL ({type(exc).__name__}: {exc})"]
    database = parsed.database or ""
    a_file = (
        parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:")
    )
    if a_file and not Path(database).is_file():
        return [f"{key}: there is no SQLite database file {database}"]
    return []


def reach(source: Source, root: Path, what: str, env: Mapping[str, str] | None = None) -> None:
    """Connect to a SQL source's database once (a file source has nothing to reach).

    Raises:
        ConfigError: the URL is not one SQLAlchemy understands (or its driver is missing).
        DataError: the database cannot be reached (the URL shown without password).
    """
    if isinstance(source, SqlSource):
        with sql_connection(source, root, describe_source(source, what), env):
            pass
