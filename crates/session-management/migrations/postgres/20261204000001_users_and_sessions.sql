-- Users, unique per (app, email), and their sessions.
-- Times are timestamptz; the manager truncates them to milliseconds, which timestamptz (microseconds)
-- keeps exactly. A session's id is the SHA-256 of its token: the token itself is never stored.
CREATE TABLE users (
    id          uuid        NOT NULL PRIMARY KEY,
    app         text        NOT NULL,
    email       text        NOT NULL,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (app, email),
    UNIQUE (app, id)
);

CREATE TABLE sessions (
    id            bytea       NOT NULL PRIMARY KEY CHECK (octet_length(id) = 32),
    app           text        NOT NULL,
    user_id       uuid        NOT NULL,
    -- text, not inet: the value must read back exactly as `IpAddr::to_string()` wrote it.
    ip            text        NOT NULL,
    user_agent    text        NOT NULL,
    data          jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    ttl_secs      integer     NOT NULL,
    version       bigint      NOT NULL,
    FOREIGN KEY (app, user_id) REFERENCES users (app, id) ON DELETE CASCADE
);

-- Per-user listing and revoke-all (and the foreign key's cascade).
CREATE INDEX sessions_by_user ON sessions (app, user_id);
-- Expiry sweeps.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
