//! The schema, one list for both databases: each step has its SQLite and
//! its PostgreSQL SQL, run once, in order, each in its own transaction
//! (SQLite counts the steps applied in `PRAGMA user_version`, PostgreSQL in
//! `pinkpage_schema`). Never edit a step that has shipped: add a new one,
//! with both dialects.
//!
//! The two dialects keep the same tables and columns, so each record is
//! the same on either: times are RFC 3339 UTC text with milliseconds (fixed
//! width, so text order is time order, and the audit chain's MAC covers the
//! same bytes), JSON is text, integers are 64-bit (`BIGINT` on PostgreSQL,
//! where `user` is a reserved word and is quoted). Triggers are PL/pgSQL
//! functions on PostgreSQL, and every text column there compares bytewise
//! (`COLLATE "C"`, SQLite's own order), whatever the database's locale, so
//! times compare as times and lists sort as on SQLite. PostgreSQL databases start at this list's
//! end: no PostgreSQL database holds rows from before a step, so its steps
//! carry no back-fill of old rows (SQLite's 8 and 9 do).

/// A table of runs and the table of their children, as the schema below
/// makes them on both databases: what retention deletes
/// (`sqlite::retention`, `postgres::retention`).
pub struct RunTables {
    /// The runs (`run_id`, `status`, `finished_at`, `seq`).
    pub runs: &'static str,
    /// Their children, keyed by `run_id` and [`RunTables::child_key`].
    pub children: &'static str,
    /// The rest of a child's primary key: its columns.
    pub child_key: &'static str,
    /// The states of a run that is not over (SQL list).
    pub live: &'static str,
}

/// BMX4 runs and their results (steps 3 and 12).
pub const BATCH_RUNS: RunTables = RunTables {
    runs: "batch_runs",
    children: "batch_results",
    child_key: "server, idx",
    live: "'running'",
};

/// Workflow runs and their steps (steps 5 and 12).
pub const WORKFLOW_RUNS: RunTables = RunTables {
    runs: "workflow_runs",
    children: "workflow_steps",
    child_key: "idx",
    live: "'running', 'paused'",
};

/// One step of the schema, in both dialects.
pub struct Migration {
    /// The step on SQLite.
    pub sqlite: &'static str,
    /// The same step on PostgreSQL.
    pub postgres: &'static str,
}

/// The schema, one step at a time.
pub const MIGRATIONS: &[Migration] = &[
    // 1: the audit trail
    Migration {
        sqlite: "CREATE TABLE audit_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT    NOT NULL,           -- RFC 3339, UTC
        actor       TEXT    NOT NULL,           -- connection id, 'rest', 'admin', 'system'
        action      TEXT    NOT NULL,           -- e.g. 'session.start', 'ssh.command.end'
        server      TEXT,
        command     TEXT,
        exit_status INTEGER,
        bytes       INTEGER,
        detail      TEXT                        -- JSON object, never a secret
    );
    CREATE INDEX audit_events_at ON audit_events(at);
    CREATE INDEX audit_events_action ON audit_events(action);",
        postgres: "CREATE TABLE audit_events (
        id          BIGINT  PRIMARY KEY,        -- assigned by the append, under the chain's lock
        at          TEXT COLLATE \"C\"    NOT NULL,
        actor       TEXT COLLATE \"C\"    NOT NULL,
        action      TEXT COLLATE \"C\"    NOT NULL,
        server      TEXT COLLATE \"C\",
        command     TEXT COLLATE \"C\",
        exit_status BIGINT,
        bytes       BIGINT,
        detail      TEXT COLLATE \"C\"
    );
    CREATE INDEX audit_events_at ON audit_events(at);
    CREATE INDEX audit_events_action ON audit_events(action);",
    },
    // 2: health transitions (one row each time a server's is_healthy flips)
    Migration {
        sqlite: "CREATE TABLE health_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT    NOT NULL,           -- when the deciding check finished, RFC 3339 UTC
        server      TEXT    NOT NULL,
        host        TEXT    NOT NULL,
        healthy     INTEGER NOT NULL,           -- 0 / 1
        previous    INTEGER,                    -- 0 / 1, NULL for a server's first result
        error       TEXT,                       -- why the last check failed
        latency_ms  REAL                        -- of the last good check
    );
    CREATE INDEX health_events_server ON health_events(server, id);",
        postgres: "CREATE TABLE health_events (
        id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at          TEXT COLLATE \"C\"    NOT NULL,
        server      TEXT COLLATE \"C\"    NOT NULL,
        host        TEXT COLLATE \"C\"    NOT NULL,
        healthy     BIGINT  NOT NULL,
        previous    BIGINT,
        error       TEXT COLLATE \"C\",
        latency_ms  DOUBLE PRECISION
    );
    CREATE INDEX health_events_server ON health_events(server, id);",
    },
    // 3: BMX4 batch runs and their per-command results
    Migration {
        sqlite: "CREATE TABLE batch_runs (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of creation, for newest-first paging
        run_id         TEXT    NOT NULL UNIQUE,            -- UUID v4
        actor          TEXT    NOT NULL,                   -- connection id
        started_at     TEXT    NOT NULL,                   -- RFC 3339, UTC
        finished_at    TEXT,
        status         TEXT    NOT NULL,                   -- running, completed, cancelled
        servers        TEXT    NOT NULL,                   -- JSON array of names
        commands       TEXT    NOT NULL,                   -- JSON array of command lines
        stop_on_error  INTEGER NOT NULL,
        retries        INTEGER NOT NULL,
        retry_delay_ms INTEGER NOT NULL,
        timeout_s      REAL,
        succeeded      INTEGER NOT NULL DEFAULT 0,
        failed         INTEGER NOT NULL DEFAULT 0,
        skipped        INTEGER NOT NULL DEFAULT 0,
        duration_ms    INTEGER
    );
    CREATE TABLE batch_results (
        run_id       TEXT    NOT NULL REFERENCES batch_runs(run_id) ON DELETE CASCADE,
        server       TEXT    NOT NULL,
        idx          INTEGER NOT NULL,
        command      TEXT    NOT NULL,
        status       TEXT    NOT NULL,                     -- succeeded, failed, skipped
        exit_status  INTEGER,
        exit_signal  TEXT,
        stdout       TEXT    NOT NULL,
        stderr       TEXT    NOT NULL,
        truncated    INTEGER NOT NULL,
        attempts     INTEGER NOT NULL,
        duration_ms  INTEGER NOT NULL,
        error_code   INTEGER,
        error_detail TEXT,
        PRIMARY KEY (run_id, server, idx)
    );",
        postgres: "CREATE TABLE batch_runs (
        seq            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id         TEXT COLLATE \"C\"    NOT NULL UNIQUE,
        actor          TEXT COLLATE \"C\"    NOT NULL,
        started_at     TEXT COLLATE \"C\"    NOT NULL,
        finished_at    TEXT COLLATE \"C\",
        status         TEXT COLLATE \"C\"    NOT NULL,
        servers        TEXT COLLATE \"C\"    NOT NULL,
        commands       TEXT COLLATE \"C\"    NOT NULL,
        stop_on_error  BIGINT  NOT NULL,
        retries        BIGINT  NOT NULL,
        retry_delay_ms BIGINT  NOT NULL,
        timeout_s      DOUBLE PRECISION,
        succeeded      BIGINT  NOT NULL DEFAULT 0,
        failed         BIGINT  NOT NULL DEFAULT 0,
        skipped        BIGINT  NOT NULL DEFAULT 0,
        duration_ms    BIGINT
    );
    CREATE TABLE batch_results (
        run_id       TEXT COLLATE \"C\"    NOT NULL REFERENCES batch_runs(run_id) ON DELETE CASCADE,
        server       TEXT COLLATE \"C\"    NOT NULL,
        idx          BIGINT  NOT NULL,
        command      TEXT COLLATE \"C\"    NOT NULL,
        status       TEXT COLLATE \"C\"    NOT NULL,
        exit_status  BIGINT,
        exit_signal  TEXT COLLATE \"C\",
        stdout       TEXT COLLATE \"C\"    NOT NULL,
        stderr       TEXT COLLATE \"C\"    NOT NULL,
        truncated    BIGINT  NOT NULL,
        attempts     BIGINT  NOT NULL,
        duration_ms  BIGINT  NOT NULL,
        error_code   BIGINT,
        error_detail TEXT COLLATE \"C\",
        PRIMARY KEY (run_id, server, idx)
    );",
    },
    // 4: accounts, API tokens, sign-in sessions (src/accounts), and who did
    // what in the audit trail and batch runs. Only hashes of passwords,
    // tokens and cookies are stored. `auth_revision` is bumped by triggers
    // on every change that can grant or withdraw access, so a daemon notices
    // a change made by another process (the command line) by polling one
    // number; touching a session or a token (last_seen_at, last_used_at) is
    // not such a change.
    Migration {
        sqlite: "CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        name          TEXT    NOT NULL UNIQUE,
        role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        servers       TEXT,                       -- JSON array of tags; NULL = every server
        password_hash TEXT,                       -- Argon2id PHC string; NULL = cannot sign in with a password
        disabled      INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT    NOT NULL,           -- RFC 3339, UTC
        changed_at    TEXT    NOT NULL
    );
    CREATE TABLE api_tokens (
        id           TEXT    PRIMARY KEY,         -- public id (12 hex), shown in lists and logs
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label        TEXT    NOT NULL,
        secret_hash  TEXT    NOT NULL,            -- hex SHA-256 of the whole token
        created_at   TEXT    NOT NULL,
        expires_at   TEXT,                        -- NULL = never
        revoked_at   TEXT,
        last_used_at TEXT
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_id);
    CREATE TABLE web_sessions (
        id           TEXT    PRIMARY KEY,         -- public id, shown in logs
        secret_hash  TEXT    NOT NULL UNIQUE,     -- hex SHA-256 of the cookie value
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at   TEXT    NOT NULL,
        last_seen_at TEXT    NOT NULL,
        expires_at   TEXT    NOT NULL,            -- absolute lifetime
        remote_addr  TEXT
    );
    CREATE INDEX web_sessions_user ON web_sessions(user_id);
    CREATE TABLE auth_revision (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        revision INTEGER NOT NULL
    );
    INSERT INTO auth_revision (id, revision) VALUES (1, 0);
    CREATE TRIGGER users_insert_bumps AFTER INSERT ON users
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    CREATE TRIGGER users_update_bumps AFTER UPDATE ON users
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    CREATE TRIGGER users_delete_bumps AFTER DELETE ON users
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    CREATE TRIGGER api_tokens_insert_bumps AFTER INSERT ON api_tokens
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    -- last_used_at is left out: using a token is not a change of access
    CREATE TRIGGER api_tokens_update_bumps
        AFTER UPDATE OF id, user_id, label, secret_hash, created_at, expires_at, revoked_at ON api_tokens
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    CREATE TRIGGER api_tokens_delete_bumps AFTER DELETE ON api_tokens
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    CREATE TRIGGER web_sessions_insert_bumps AFTER INSERT ON web_sessions
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    CREATE TRIGGER web_sessions_delete_bumps AFTER DELETE ON web_sessions
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; END;
    ALTER TABLE audit_events ADD COLUMN user TEXT;
    ALTER TABLE audit_events ADD COLUMN remote_addr TEXT;
    ALTER TABLE batch_runs ADD COLUMN user TEXT;
    ALTER TABLE batch_runs ADD COLUMN remote_addr TEXT;",
        postgres: "CREATE TABLE users (
        id            BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name          TEXT COLLATE \"C\"    NOT NULL UNIQUE,
        role          TEXT COLLATE \"C\"    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        servers       TEXT COLLATE \"C\",
        password_hash TEXT COLLATE \"C\",
        disabled      BIGINT  NOT NULL DEFAULT 0,
        created_at    TEXT COLLATE \"C\"    NOT NULL,
        changed_at    TEXT COLLATE \"C\"    NOT NULL
    );
    CREATE TABLE api_tokens (
        id           TEXT COLLATE \"C\"    PRIMARY KEY,
        user_id      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label        TEXT COLLATE \"C\"    NOT NULL,
        secret_hash  TEXT COLLATE \"C\"    NOT NULL,
        created_at   TEXT COLLATE \"C\"    NOT NULL,
        expires_at   TEXT COLLATE \"C\",
        revoked_at   TEXT COLLATE \"C\",
        last_used_at TEXT COLLATE \"C\"
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_id);
    CREATE TABLE web_sessions (
        id           TEXT COLLATE \"C\"    PRIMARY KEY,
        secret_hash  TEXT COLLATE \"C\"    NOT NULL UNIQUE,
        user_id      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at   TEXT COLLATE \"C\"    NOT NULL,
        last_seen_at TEXT COLLATE \"C\"    NOT NULL,
        expires_at   TEXT COLLATE \"C\"    NOT NULL,
        remote_addr  TEXT COLLATE \"C\"
    );
    CREATE INDEX web_sessions_user ON web_sessions(user_id);
    CREATE TABLE auth_revision (
        id       BIGINT PRIMARY KEY CHECK (id = 1),
        revision BIGINT NOT NULL
    );
    INSERT INTO auth_revision (id, revision) VALUES (1, 0);
    CREATE FUNCTION pinkpage_bump_auth_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE auth_revision SET revision = revision + 1 WHERE id = 1; RETURN NULL; END $$;
    CREATE TRIGGER users_bumps AFTER INSERT OR UPDATE OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION pinkpage_bump_auth_revision();
    CREATE TRIGGER api_tokens_insert_bumps AFTER INSERT OR DELETE ON api_tokens
        FOR EACH ROW EXECUTE FUNCTION pinkpage_bump_auth_revision();
    -- last_used_at is left out: using a token is not a change of access
    CREATE TRIGGER api_tokens_update_bumps
        AFTER UPDATE OF id, user_id, label, secret_hash, created_at, expires_at, revoked_at ON api_tokens
        FOR EACH ROW EXECUTE FUNCTION pinkpage_bump_auth_revision();
    CREATE TRIGGER web_sessions_bumps AFTER INSERT OR DELETE ON web_sessions
        FOR EACH ROW EXECUTE FUNCTION pinkpage_bump_auth_revision();
    ALTER TABLE audit_events ADD COLUMN \"user\" TEXT COLLATE \"C\";
    ALTER TABLE audit_events ADD COLUMN remote_addr TEXT COLLATE \"C\";
    ALTER TABLE batch_runs ADD COLUMN \"user\" TEXT COLLATE \"C\";
    ALTER TABLE batch_runs ADD COLUMN remote_addr TEXT COLLATE \"C\";",
    },
    // 5: workflow runs and their steps
    Migration {
        sqlite: "CREATE TABLE workflow_runs (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of creation, for newest-first paging
        run_id       TEXT    NOT NULL UNIQUE,            -- UUID v4
        workflow     TEXT    NOT NULL,
        actor        TEXT    NOT NULL,                   -- connection id or 'rest'
        user         TEXT,
        remote_addr  TEXT,
        params       TEXT    NOT NULL,                   -- JSON object: the bound values
        status       TEXT    NOT NULL,                   -- running, paused, succeeded, failed, cancelled, interrupted
        current_step INTEGER,                            -- the step running or paused at
        started_at   TEXT    NOT NULL,                   -- RFC 3339, UTC
        finished_at  TEXT,
        error        TEXT                                -- JSON error body, why it stopped
    );
    CREATE TABLE workflow_steps (
        run_id       TEXT    NOT NULL REFERENCES workflow_runs(run_id) ON DELETE CASCADE,
        idx          INTEGER NOT NULL,
        name         TEXT    NOT NULL,
        kind         TEXT    NOT NULL,                   -- command, transfer, batch, pause
        plan         TEXT    NOT NULL,                   -- JSON: the resolved step
        status       TEXT    NOT NULL,                   -- pending, running, paused, succeeded, failed, cancelled, skipped, interrupted
        started_at   TEXT,
        duration_ms  INTEGER,
        exit_status  INTEGER,
        error        TEXT,                               -- JSON error body
        output_tail  TEXT,                               -- the last 64 KiB of its output
        confirmed_by TEXT,                               -- for a pause: who confirmed
        PRIMARY KEY (run_id, idx)
    );",
        postgres: "CREATE TABLE workflow_runs (
        seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id       TEXT COLLATE \"C\"    NOT NULL UNIQUE,
        workflow     TEXT COLLATE \"C\"    NOT NULL,
        actor        TEXT COLLATE \"C\"    NOT NULL,
        \"user\"       TEXT COLLATE \"C\",
        remote_addr  TEXT COLLATE \"C\",
        params       TEXT COLLATE \"C\"    NOT NULL,
        status       TEXT COLLATE \"C\"    NOT NULL,
        current_step BIGINT,
        started_at   TEXT COLLATE \"C\"    NOT NULL,
        finished_at  TEXT COLLATE \"C\",
        error        TEXT COLLATE \"C\"
    );
    CREATE TABLE workflow_steps (
        run_id       TEXT COLLATE \"C\"    NOT NULL REFERENCES workflow_runs(run_id) ON DELETE CASCADE,
        idx          BIGINT  NOT NULL,
        name         TEXT COLLATE \"C\"    NOT NULL,
        kind         TEXT COLLATE \"C\"    NOT NULL,
        plan         TEXT COLLATE \"C\"    NOT NULL,
        status       TEXT COLLATE \"C\"    NOT NULL,
        started_at   TEXT COLLATE \"C\",
        duration_ms  BIGINT,
        exit_status  BIGINT,
        error        TEXT COLLATE \"C\",
        output_tail  TEXT COLLATE \"C\",
        confirmed_by TEXT COLLATE \"C\",
        PRIMARY KEY (run_id, idx)
    );",
    },
    // 6: temporary files on servers, recorded before they are created and
    // dropped once renamed or removed; what a killed daemon left is removed
    // at the next connection (actors' files::temp_files)
    Migration {
        sqlite: "CREATE TABLE temp_files (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        recorded_at TEXT    NOT NULL,                   -- RFC 3339, UTC
        server      TEXT    NOT NULL,                   -- configured name, when recorded
        username    TEXT    NOT NULL,                   -- the account on the machine ...
        host        TEXT    NOT NULL,                   -- ... lowercase ...
        port        INTEGER NOT NULL,                   -- ... and port: whose connection cleans it
        path        TEXT    NOT NULL,                   -- full path on the server
        kind        TEXT    NOT NULL                    -- upload, transfer, script
    );",
        postgres: "CREATE TABLE temp_files (
        id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recorded_at TEXT COLLATE \"C\"    NOT NULL,
        server      TEXT COLLATE \"C\"    NOT NULL,
        username    TEXT COLLATE \"C\"    NOT NULL,
        host        TEXT COLLATE \"C\"    NOT NULL,
        port        BIGINT  NOT NULL,
        path        TEXT COLLATE \"C\"    NOT NULL,
        kind        TEXT COLLATE \"C\"    NOT NULL
    );",
    },
    // 7: the instance that wrote each record of live work, so start-up
    // recovery touches only its own instance's runs, temporary files and
    // unfinished work (one constant per daemon until several instances
    // share a database); rows from before carry the single daemon's
    Migration {
        sqlite: "ALTER TABLE audit_events ADD COLUMN instance TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE batch_runs ADD COLUMN instance TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE workflow_runs ADD COLUMN instance TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE temp_files ADD COLUMN instance TEXT NOT NULL DEFAULT 'local';",
        postgres: "ALTER TABLE audit_events ADD COLUMN instance TEXT COLLATE \"C\" NOT NULL DEFAULT 'local';
    ALTER TABLE batch_runs ADD COLUMN instance TEXT COLLATE \"C\" NOT NULL DEFAULT 'local';
    ALTER TABLE workflow_runs ADD COLUMN instance TEXT COLLATE \"C\" NOT NULL DEFAULT 'local';
    ALTER TABLE temp_files ADD COLUMN instance TEXT COLLATE \"C\" NOT NULL DEFAULT 'local';",
    },
    // 8: the servers a workflow run acts on (JSON array of names), so a
    // reader sees only runs on servers it may use, filtered in the query
    // (batch runs have had theirs since 2); runs from before get theirs
    // from their steps' plans
    Migration {
        sqlite: "ALTER TABLE workflow_runs ADD COLUMN servers TEXT NOT NULL DEFAULT '[]';
    UPDATE workflow_runs SET servers = (
        SELECT json_group_array(name) FROM (
            SELECT DISTINCT name FROM (
                SELECT json_extract(st.plan, '$.server') AS name
                    FROM workflow_steps st WHERE st.run_id = workflow_runs.run_id
                UNION ALL SELECT json_extract(st.plan, '$.source_server')
                    FROM workflow_steps st WHERE st.run_id = workflow_runs.run_id
                UNION ALL SELECT json_extract(st.plan, '$.destination_server')
                    FROM workflow_steps st WHERE st.run_id = workflow_runs.run_id
                UNION ALL SELECT s.value
                    FROM workflow_steps st, json_each(st.plan, '$.servers') AS s
                    WHERE st.run_id = workflow_runs.run_id
            ) WHERE name IS NOT NULL ORDER BY name
        )
    );",
        postgres: "ALTER TABLE workflow_runs ADD COLUMN servers TEXT COLLATE \"C\" NOT NULL DEFAULT '[]';",
    },
    // 9: sign-in sessions leave the access revision and get a change log
    // of their own, so a daemon follows sessions started and ended (by
    // itself, another instance or the command line) by reading what changed
    // since it last looked, instead of reloading every account, token and
    // session after each sign-in. `auth_revision.sessions` numbers every
    // session change (the counter row's lock orders concurrent writers, so
    // the numbers follow commit order on any database); `session_log` says
    // what each number did, and is pruned: `sessions_pruned` is the highest
    // number no longer in it (a daemon that has not seen it reloads whole).
    // `web_sessions.seq` orders a user's sessions (the oldest ends first
    // past the per-user cap).
    Migration {
        sqlite: "ALTER TABLE auth_revision ADD COLUMN sessions INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE auth_revision ADD COLUMN sessions_pruned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE web_sessions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    UPDATE web_sessions SET seq = rowid;
    UPDATE auth_revision SET sessions = (SELECT coalesce(max(seq), 0) FROM web_sessions),
                             sessions_pruned = (SELECT coalesce(max(seq), 0) FROM web_sessions);
    CREATE TABLE session_log (
        seq        INTEGER PRIMARY KEY,         -- auth_revision.sessions after the change
        session_id TEXT    NOT NULL,            -- web_sessions.id
        ended      INTEGER NOT NULL,            -- 0 started, 1 ended
        at         TEXT    NOT NULL             -- RFC 3339, UTC: when, for pruning
    );
    DROP TRIGGER web_sessions_insert_bumps;
    DROP TRIGGER web_sessions_delete_bumps;
    CREATE TRIGGER web_sessions_insert_logs AFTER INSERT ON web_sessions
        BEGIN
            UPDATE auth_revision SET sessions = sessions + 1 WHERE id = 1;
            UPDATE web_sessions SET seq = (SELECT sessions FROM auth_revision WHERE id = 1)
                WHERE id = NEW.id;
            INSERT INTO session_log (seq, session_id, ended, at)
                SELECT sessions, NEW.id, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                FROM auth_revision WHERE id = 1;
        END;
    CREATE TRIGGER web_sessions_delete_logs AFTER DELETE ON web_sessions
        BEGIN
            UPDATE auth_revision SET sessions = sessions + 1 WHERE id = 1;
            INSERT INTO session_log (seq, session_id, ended, at)
                SELECT sessions, OLD.id, 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                FROM auth_revision WHERE id = 1;
        END;",
        postgres: "ALTER TABLE auth_revision ADD COLUMN sessions BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE auth_revision ADD COLUMN sessions_pruned BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE web_sessions ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE session_log (
        seq        BIGINT  PRIMARY KEY,
        session_id TEXT COLLATE \"C\"    NOT NULL,
        ended      BIGINT  NOT NULL,
        at         TEXT COLLATE \"C\"    NOT NULL
    );
    DROP TRIGGER web_sessions_bumps ON web_sessions;
    -- the counter row's lock (taken by the UPDATE) orders concurrent
    -- writers, so the numbers follow commit order
    CREATE FUNCTION pinkpage_log_session() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE n BIGINT;
        BEGIN
            UPDATE auth_revision SET sessions = sessions + 1 WHERE id = 1 RETURNING sessions INTO n;
            INSERT INTO session_log (seq, session_id, ended, at) VALUES (
                n,
                CASE WHEN TG_OP = 'INSERT' THEN NEW.id ELSE OLD.id END,
                CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE 1 END,
                to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'));
            IF TG_OP = 'INSERT' THEN NEW.seq := n; RETURN NEW; END IF;
            RETURN OLD;
        END $$;
    CREATE TRIGGER web_sessions_insert_logs BEFORE INSERT ON web_sessions
        FOR EACH ROW EXECUTE FUNCTION pinkpage_log_session();
    CREATE TRIGGER web_sessions_delete_logs AFTER DELETE ON web_sessions
        FOR EACH ROW EXECUTE FUNCTION pinkpage_log_session();",
    },
    // 10: the audit chain (src/store/chain). Every row gets the same
    // fields whatever wrote it (domain, target, outcome, code) and its
    // link in the chain (`mac`, 64 hex digits); rows from before get the
    // domain of their action and no outcome, and are sealed under one
    // genesis MAC at the first start with the key (`audit_chain`, one row,
    // written once: the last sealed id, the genesis MAC, the key's check
    // value). Rows are never updated: a trigger refuses it, as a guard
    // against the daemon's own code (anyone with the file can drop it; the
    // chain is what shows their changes).
    Migration {
        sqlite: "ALTER TABLE audit_events ADD COLUMN domain TEXT;
    ALTER TABLE audit_events ADD COLUMN target TEXT;
    ALTER TABLE audit_events ADD COLUMN outcome TEXT;
    ALTER TABLE audit_events ADD COLUMN code INTEGER;
    ALTER TABLE audit_events ADD COLUMN mac TEXT;
    UPDATE audit_events SET domain = CASE
        WHEN actor = 'cli' THEN 'cli'
        WHEN action = 'user.autocreate' THEN 'auth'
        WHEN action LIKE 'session.%' OR action LIKE 'ssh.%' OR action LIKE 'transfer.%' THEN 'stub'
        WHEN action LIKE 'batch.%' THEN 'bmx4'
        WHEN action LIKE 'sftp.%' OR action LIKE 'script.%' THEN 'bmx5'
        WHEN action LIKE 'diff.%' THEN 'diff'
        WHEN action LIKE 'terminal.%' THEN 'terminal'
        WHEN action LIKE 'workflow.%' THEN 'workflow'
        WHEN action LIKE 'auth.%' THEN 'auth'
        WHEN action LIKE 'user.%' OR action LIKE 'token.%' THEN 'rest'
        ELSE 'system' END;
    CREATE INDEX audit_events_user ON audit_events(user, id);
    CREATE TABLE audit_chain (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        sealed_through INTEGER NOT NULL,        -- the last row sealed at genesis (0: none)
        sealed_rows    INTEGER NOT NULL,        -- how many rows it seals
        genesis_mac    TEXT    NOT NULL,        -- HMAC over them, 64 hex digits
        key_check      TEXT    NOT NULL,        -- HMAC of a fixed label: which key, never the key
        sealed_at      TEXT    NOT NULL         -- RFC 3339, UTC
    );
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
    CREATE TRIGGER audit_chain_written_once BEFORE UPDATE ON audit_chain
        BEGIN SELECT RAISE(ABORT, 'the audit chain record is written once'); END;",
        postgres: "ALTER TABLE audit_events ADD COLUMN domain TEXT COLLATE \"C\";
    ALTER TABLE audit_events ADD COLUMN target TEXT COLLATE \"C\";
    ALTER TABLE audit_events ADD COLUMN outcome TEXT COLLATE \"C\";
    ALTER TABLE audit_events ADD COLUMN code BIGINT;
    ALTER TABLE audit_events ADD COLUMN mac TEXT COLLATE \"C\";
    CREATE INDEX audit_events_user ON audit_events(\"user\", id);
    CREATE TABLE audit_chain (
        id             BIGINT  PRIMARY KEY CHECK (id = 1),
        sealed_through BIGINT  NOT NULL,
        sealed_rows    BIGINT  NOT NULL,
        genesis_mac    TEXT COLLATE \"C\"    NOT NULL,
        key_check      TEXT COLLATE \"C\"    NOT NULL,
        sealed_at      TEXT COLLATE \"C\"    NOT NULL
    );
    CREATE FUNCTION pinkpage_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$;
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION pinkpage_refuse_update('audit rows are append-only');
    CREATE TRIGGER audit_chain_written_once BEFORE UPDATE ON audit_chain
        FOR EACH ROW EXECUTE FUNCTION pinkpage_refuse_update('the audit chain record is written once');",
    },
    // 11: the index of PTY recordings (asciicast files under
    // <data dir>/recordings/): one row per recorded PTY, by its pty_id,
    // written when it starts and again when it ends; `file` is relative to
    // the recordings directory; `state` is recording, ended, interrupted
    // (a killed daemon left it open) or failed (the disk failed under it)
    Migration {
        sqlite: "CREATE TABLE recordings (
        id          TEXT    PRIMARY KEY,                -- the PTY's pty_id
        kind        TEXT    NOT NULL,                   -- command, script, workflow_step, terminal
        user        TEXT    NOT NULL,
        server      TEXT    NOT NULL,
        command     TEXT    NOT NULL,                   -- empty for an interactive shell
        terminal_id TEXT,
        run_id      TEXT,
        step        INTEGER,
        started_at  TEXT    NOT NULL,                   -- RFC 3339, UTC
        ended_at    TEXT,
        state       TEXT    NOT NULL,
        reason      TEXT,
        exit_status INTEGER,
        error       TEXT,
        bytes       INTEGER NOT NULL DEFAULT 0,         -- the file's size once ended
        width       INTEGER NOT NULL,
        height      INTEGER NOT NULL,
        file        TEXT    NOT NULL,                   -- relative to the recordings directory
        instance    TEXT    NOT NULL
    );
    CREATE INDEX recordings_started ON recordings(started_at);
    CREATE INDEX recordings_user ON recordings(user, started_at);
    CREATE INDEX recordings_run ON recordings(run_id);
    CREATE INDEX recordings_state ON recordings(state, instance);",
        postgres: "CREATE TABLE recordings (
        id          TEXT COLLATE \"C\"    PRIMARY KEY,
        kind        TEXT COLLATE \"C\"    NOT NULL,
        \"user\"      TEXT COLLATE \"C\"    NOT NULL,
        server      TEXT COLLATE \"C\"    NOT NULL,
        command     TEXT COLLATE \"C\"    NOT NULL,
        terminal_id TEXT COLLATE \"C\",
        run_id      TEXT COLLATE \"C\",
        step        BIGINT,
        started_at  TEXT COLLATE \"C\"    NOT NULL,
        ended_at    TEXT COLLATE \"C\",
        state       TEXT COLLATE \"C\"    NOT NULL,
        reason      TEXT COLLATE \"C\",
        exit_status BIGINT,
        error       TEXT COLLATE \"C\",
        bytes       BIGINT  NOT NULL DEFAULT 0,
        width       BIGINT  NOT NULL,
        height      BIGINT  NOT NULL,
        file        TEXT COLLATE \"C\"    NOT NULL,
        instance    TEXT COLLATE \"C\"    NOT NULL
    );
    CREATE INDEX recordings_started ON recordings(started_at);
    CREATE INDEX recordings_user ON recordings(\"user\", started_at);
    CREATE INDEX recordings_run ON recordings(run_id);
    CREATE INDEX recordings_state ON recordings(state, instance);",
    },
    // 12: retention (issue 28) deletes the oldest finished runs and health
    // transitions a few hundred at a time; each step finds its rows through
    // these instead of reading the whole table (running runs have no
    // finished_at and are not in the range). Children go by their primary
    // keys, which start with run_id.
    Migration {
        sqlite: "CREATE INDEX batch_runs_finished ON batch_runs(finished_at);
    CREATE INDEX workflow_runs_finished ON workflow_runs(finished_at);
    CREATE INDEX health_events_at ON health_events(at);",
        postgres: "CREATE INDEX batch_runs_finished ON batch_runs(finished_at);
    CREATE INDEX workflow_runs_finished ON workflow_runs(finished_at);
    CREATE INDEX health_events_at ON health_events(at);",
    },
    // 13: PostgreSQL tells every instance at once that access changed
    // (`NOTIFY pinkpage_access`, sent at commit), so a token revoked or a
    // session ended through one instance reaches the others' connections
    // without waiting for their one-second look; SQLite has one daemon
    // on its file and nothing to tell
    Migration {
        sqlite: "",
        postgres: "CREATE OR REPLACE FUNCTION pinkpage_bump_auth_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE auth_revision SET revision = revision + 1 WHERE id = 1;
            PERFORM pg_notify('pinkpage_access', '');
            RETURN NULL;
        END $$;
    CREATE OR REPLACE FUNCTION pinkpage_log_session() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE n BIGINT;
        BEGIN
            UPDATE auth_revision SET sessions = sessions + 1 WHERE id = 1 RETURNING sessions INTO n;
            INSERT INTO session_log (seq, session_id, ended, at) VALUES (
                n,
                CASE WHEN TG_OP = 'INSERT' THEN NEW.id ELSE OLD.id END,
                CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE 1 END,
                to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'));
            PERFORM pg_notify('pinkpage_access', '');
            IF TG_OP = 'INSERT' THEN NEW.seq := n; RETURN NEW; END IF;
            RETURN OLD;
        END $$;",
    },
];
