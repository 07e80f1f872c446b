-- Changes the Redis hot tier must hear about, written in the same transaction as the change and
-- removed once applied to Redis (see TieredStore). Only used when a Redis tier is configured.
CREATE TABLE invalidation_outbox (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('revoke', 'evict', 'reset_app')),
    app         TEXT    NOT NULL,
    session_id  BLOB    CHECK (session_id IS NULL OR length(session_id) = 32),
    until_ms    INTEGER
);
