"""Engine and sessions for any SQLAlchemy URL; SQLite gets WAL mode, foreign keys and a busy timeout."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from jasper_rag.store.models import Base


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor see a half-done commit
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the schema created; the SQLite file's folder is created too."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    # Processes opening a new database at once race on creating each table, index and column. A lost race
    # means another process just created one of them, and none is ever dropped, so one attempt per schema
    # object (plus one) always ends with the whole schema in place.
    attempts = 1 + sum(1 + len(table.indexes) + len(table.columns) for table in Base.metadata.sorted_tables)
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            add_missing_columns(engine)
            break
        except (IntegrityError, OperationalError, ProgrammingError):  # another process created one at once
            if attempt == attempts - 1:
                raise
    return engine


def add_missing_columns(engine: Engine) -> list[str]:
    """Add the nullable columns the models gained since the store was created (``ALTER TABLE ... ADD
    COLUMN``; old rows read None); returns their ``table.column`` names. Tables are created, never changed
    otherwise, so this is the whole schema upgrade."""
    inspector = inspect(engine)
    added = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as connection:
                connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
            added.append(f"{table.name}.{column.name}")
    return added


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """Session factory; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
