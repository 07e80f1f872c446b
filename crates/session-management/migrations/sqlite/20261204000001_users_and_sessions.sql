-- Users, unique per (app, email), and their sessions.
-- Times are milliseconds since the Unix epoch (UTC). A session's id is the SHA-256 of its token:
-- the token itself is never stored.
CREATE TABLE users (
    id          TEXT    NOT NULL PRIMARY KEY,
    app         TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (app, email),
    UNIQUE (app, id)
);

CREATE TABLE sessions (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    app           TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    ip            TEXT    NOT NULL,
    user_agent    TEXT    NOT NULL,
    data          TEXT    NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    ttl_secs      INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    FOREIGN KEY (app, user_id) REFERENCES users (app, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Per-user listing and revoke-all.
CREATE INDEX sessions_by_user ON sessions (app, user_id);
-- Expiry sweeps.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
