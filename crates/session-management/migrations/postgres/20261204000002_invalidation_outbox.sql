-- Changes the Redis hot tier must hear about, written in the same transaction as the change and
-- removed once applied to Redis (see TieredStore). Only used when a Redis tier is configured.
CREATE TABLE invalidation_outbox (
    seq         bigserial   NOT NULL PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('revoke', 'evict', 'reset_app')),
    app         text        NOT NULL,
    session_id  bytea       CHECK (session_id IS NULL OR octet_length(session_id) = 32),
    until       timestamptz
);
