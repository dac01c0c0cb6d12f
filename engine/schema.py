"""The database's schema: its tables as forward migrations, and what tells
our file from another program's.

PRAGMA user_version holds the schema version; each migration moves it
forward by one and runs in its own transaction, so a crash leaves a file at
one version, never between two.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the tables
    """
    CREATE TABLE directives (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,
        total_cost_usd REAL NOT NULL DEFAULT 0,
        regenerations INTEGER NOT NULL DEFAULT 0,
        failed_steps INTEGER NOT NULL DEFAULT 0,
        wall_time_used_s REAL NOT NULL DEFAULT 0,
        active_since REAL,
        last_seq INTEGER NOT NULL DEFAULT 0,
        pause_reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE directive_chains (
        id TEXT PRIMARY KEY,
        directive_id TEXT NOT NULL REFERENCES directives(id) ON DELETE CASCADE,
        generation INTEGER NOT NULL,
        planner TEXT NOT NULL,
        reason TEXT,
        superseded INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        UNIQUE (directive_id, generation)
    );
    CREATE TABLE chain_steps (
        id TEXT PRIMARY KEY,
        chain_id TEXT NOT NULL REFERENCES directive_chains(id) ON DELETE CASCADE,
        directive_id TEXT NOT NULL REFERENCES directives(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        rework_count INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        confidence REAL,
        level TEXT,
        rework_instructions TEXT,
        layer INTEGER NOT NULL DEFAULT 0,
        row INTEGER NOT NULL DEFAULT 0,
        carried_from TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (chain_id, name)
    );
    CREATE INDEX chain_steps_by_chain_status ON chain_steps (chain_id, status);
    CREATE TABLE step_deps (
        step_id TEXT NOT NULL REFERENCES chain_steps(id) ON DELETE CASCADE,
        depends_on TEXT NOT NULL REFERENCES chain_steps(id) ON DELETE CASCADE,
        PRIMARY KEY (step_id, depends_on)
    ) WITHOUT ROWID;
    CREATE TABLE step_runs (
        id TEXT PRIMARY KEY,
        step_id TEXT NOT NULL REFERENCES chain_steps(id) ON DELETE CASCADE,
        directive_id TEXT NOT NULL REFERENCES directives(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        executor TEXT NOT NULL,
        status TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        error TEXT,
        modified_files TEXT NOT NULL DEFAULT '[]',
        usage TEXT NOT NULL DEFAULT '{}',
        cost_usd REAL NOT NULL DEFAULT 0,
        rework_instructions TEXT,
        commit_sha TEXT,
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX step_runs_by_step ON step_runs (step_id, attempt);
    CREATE TABLE directive_evaluations (
        id TEXT PRIMARY KEY,
        directive_id TEXT NOT NULL REFERENCES directives(id) ON DELETE CASCADE,
        step_id TEXT NOT NULL REFERENCES chain_steps(id) ON DELETE CASCADE,
        run_id TEXT REFERENCES step_runs(id) ON DELETE CASCADE,
        score REAL NOT NULL,
        level TEXT NOT NULL,
        passed INTEGER NOT NULL,
        results TEXT NOT NULL,
        summary TEXT NOT NULL,
        rework_instructions TEXT,
        flags TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL
    );
    CREATE INDEX evaluations_by_step ON directive_evaluations (step_id, created_at);
    CREATE TABLE approval_requests (
        id TEXT PRIMARY KEY,
        directive_id TEXT NOT NULL REFERENCES directives(id) ON DELETE CASCADE,
        step_id TEXT REFERENCES chain_steps(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        summary TEXT NOT NULL,
        evaluation_id TEXT REFERENCES directive_evaluations(id),
        options TEXT NOT NULL DEFAULT '[]',
        decision TEXT,
        comment TEXT,
        created_at REAL NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX approvals_pending ON approval_requests (status, created_at);
    CREATE TABLE directive_events (
        directive_id TEXT NOT NULL REFERENCES directives(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        actor TEXT NOT NULL,
        step_id TEXT,
        ts REAL NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (directive_id, seq)
    ) WITHOUT ROWID;
    """,
    # 2: who runs the engine on this file (one running engine per database)
    """
    CREATE TABLE engine_lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        owner TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        heartbeat REAL NOT NULL
    );
    """,
    # 3: what planning cost, kept apart so that the directive's total is
    # always the sum of its attempts plus its planning (failed plans too)
    """
    ALTER TABLE directives ADD COLUMN planning_cost_usd REAL NOT NULL DEFAULT 0;
    """,
    # 4: git worktrees: where each attempt started, and which commit a
    # rework should carry forward (a merge conflict, changes requested)
    """
    ALTER TABLE step_runs ADD COLUMN base_sha TEXT;
    ALTER TABLE chain_steps ADD COLUMN carry_sha TEXT;
    """,
    # 5: the engine's hot path. spec_rev moves whenever the spec text does, so
    # a read can take the parsed spec from its connection's cache instead of
    # fetching the text (174 KB for 1,000 steps); an index on the dependency
    # side finds the steps a passed step may have made ready.
    """
    ALTER TABLE directives ADD COLUMN spec_rev INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX step_deps_by_dependency ON step_deps (depends_on);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def foreign_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables in a file that is not ours: another program's database, which
    the store must not adopt (add its tables to, switch to WAL). Ours has a
    schema version and our `directives` table; another program may number
    its schema too (`user_version`), so the version alone does not tell.
    Empty for a new file and for ours."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    if conn.execute("PRAGMA user_version").fetchone()[0] != 0 and "directives" in tables:
        return []
    return tables


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION, one migration per transaction. The
    version is read again inside each one: two programs opening a new file
    at the same moment both saw version 0, and the second, once the first
    had committed, ran the first migration again ("table directives
    already exists")."""
    while True:
        version = _version(conn)
        if version >= SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)  # another program may have migrated meanwhile
            if version < SCHEMA_VERSION:
                for statement in filter(str.strip, MIGRATIONS[version].split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this program knows ({SCHEMA_VERSION})"
        )
    return version
