//! The limit: the raw clients doing the round trips our stores need, at the same concurrency.
//!
//! - `raw-redis`: one `GET` per operation through the workspace's `redis` crate (one multiplexed
//!   `ConnectionManager`, as `RedisSessionCache` uses), on pre-written keys and values of the sizes
//!   our tiered store writes for one session (sampled from a real create at setup).
//! - `raw-pg-insert`: one single-row `INSERT` per operation into our own `sessions` table (our
//!   migrations, foreign key and indexes included) through sqlx, on a pool of 16 connections like
//!   `PostgresStore`'s.
//! - `raw-pg-insert-batch64`: the same rows, 64 per `INSERT … SELECT FROM UNNEST(…)` (ops = rows;
//!   latencies are per statement).
//! - `raw-pg-select`: one `SELECT` of a session row by id per operation (the fallback's query).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use redis::aio::ConnectionManager;
use session_management::{App, PostgresStore, SessionToken, Store as _, UserManager};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::args::{Args, Backend};
use crate::common::report::Report;
use crate::common::runner;
use crate::common::shape::{APP, IP, TTL_SECS, USER_AGENT};
use crate::ours::{self, SETUP_CONCURRENCY};
use crate::services::{self, Services};

/// Rows per batched insert.
const BATCH: u64 = 64;
/// `PostgresStore`'s pool size.
const POOL_SIZE: u32 = 16;

/// Runs the raw client `backend`.
pub async fn run(backend: Backend, args: &Args, services: &Services) -> Result<Report> {
    match backend {
        Backend::RawRedis => redis_get(args, services).await,
        Backend::RawPgInsert | Backend::RawPgInsertBatch64 | Backend::RawPgSelect => {
            postgres(backend, args, services).await
        }
        other => bail!("{} is not a raw client", other.name()),
    }
}

/// The byte sizes of the key and the value our tiered store writes for one session of the shared
/// shape, sampled from a real create (so the limit follows any change of our encoding or keys).
async fn our_record_shape(services: &Services) -> Result<(usize, usize)> {
    let url = services.database().await?;
    let durable = PostgresStore::connect(&url)
        .await?
        .with_invalidation_outbox();
    durable.migrate().await?;
    let prefix = services.prefix().await?;
    let tiered = ours::open_tiered(services.redis_url(), &prefix, Arc::new(durable)).await?;
    let manager = UserManager::new(Arc::new(tiered));
    let app = App::parse(APP)?;
    let users = Arc::new(ours::create_users(&manager, &app, 1, "shape").await?);
    ours::create_sessions(&manager, &app, &users, 1).await?;
    let mut conn = services::redis_connection(services.redis_url()).await?;
    for key in services::scan_prefix(&mut conn, &prefix).await? {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await?;
        if kind == "string" {
            let len: usize = redis::cmd("STRLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            return Ok((key.len(), len));
        }
    }
    bail!("creating a session wrote no string key to Redis")
}

async fn redis_get(args: &Args, services: &Services) -> Result<Report> {
    let setup_started = Instant::now();
    let (key_len, value_len) = our_record_shape(services).await?;
    let prefix = services.prefix().await?;
    let client = redis::Client::open(services.redis_url())?;
    let mut conn = ConnectionManager::new(client).await?;
    let random = |n: usize| -> Vec<u8> {
        let mut bytes = Vec::with_capacity(n + 32);
        while bytes.len() < n {
            let id = SessionToken::generate().expect("OS random").id();
            bytes.extend_from_slice(id.as_bytes());
        }
        bytes.truncate(n);
        bytes
    };
    let keys: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..args.sessions.max(1))
            .map(|_| {
                let mut key = prefix.as_bytes().to_vec();
                key.extend(random(key_len.saturating_sub(prefix.len())));
                key
            })
            .collect(),
    );
    let value = random(value_len);
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("SET")
                .arg(key)
                .arg(&value)
                .arg("PX")
                .arg(TTL_SECS * 1000)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let outcome = runner::run(args.ops, args.concurrency, move |i| {
        let (mut conn, keys) = (conn.clone(), keys.clone());
        async move {
            let key = &keys[(i % keys.len() as u64) as usize];
            let found: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|err| format!("GET: {err}"))?;
            match found {
                Some(value) if value.len() == value_len => Ok(()),
                Some(_) => Err("GET returned a value of another size".to_owned()),
                None => Err("GET returned nothing for a pre-written key".to_owned()),
            }
        }
    })
    .await;
    let mut report = Report::new(
        "limit",
        Backend::RawRedis.name(),
        "get",
        args.ops,
        args.concurrency,
        outcome,
    );
    report.setup_secs = setup_secs;
    report.notes.push(format!(
        "one GET per op of a {value_len}-byte value under a {key_len}-byte key (the sizes of our session record and key, sampled from a real create)"
    ));
    Ok(report)
}

/// Every column of a `sessions` row, as `PostgresStore` reads them.
type SessionRow = (
    Vec<u8>,
    String,
    Uuid,
    String,
    String,
    Json<serde_json::Value>,
    OffsetDateTime,
    OffsetDateTime,
    OffsetDateTime,
    i32,
    i64,
);

/// One session row's values.
struct Row {
    id: Vec<u8>,
    user_id: Uuid,
    at: OffsetDateTime,
}

fn row(users: &[Uuid], n: u64) -> Row {
    Row {
        id: SessionToken::generate()
            .expect("OS random")
            .id()
            .as_bytes()
            .to_vec(),
        user_id: users[(n % users.len() as u64) as usize],
        at: OffsetDateTime::now_utc(),
    }
}

async fn insert_one(pool: &PgPool, row: Row) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, app, user_id, ip, user_agent, data, created_at, expires_at, \
         last_seen_at, ttl_secs, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(row.id)
    .bind(APP)
    .bind(row.user_id)
    .bind(IP)
    .bind(USER_AGENT)
    .bind(Json(serde_json::Map::new()))
    .bind(row.at)
    .bind(row.at + Duration::from_secs(TTL_SECS))
    .bind(row.at)
    .bind(TTL_SECS as i32)
    .bind(1_i64)
    .execute(pool)
    .await?;
    Ok(())
}

async fn insert_batch(pool: &PgPool, rows: Vec<Row>) -> sqlx::Result<u64> {
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut user_ids = Vec::with_capacity(n);
    let mut ats = Vec::with_capacity(n);
    let mut expiries = Vec::with_capacity(n);
    for row in rows {
        ids.push(row.id);
        user_ids.push(row.user_id);
        ats.push(row.at);
        expiries.push(row.at + Duration::from_secs(TTL_SECS));
    }
    let done = sqlx::query(
        "INSERT INTO sessions (id, app, user_id, ip, user_agent, data, created_at, expires_at, \
         last_seen_at, ttl_secs, version) \
         SELECT id, app, user_id, ip, user_agent, '{}'::jsonb, at, expires_at, at, ttl_secs, 1 \
         FROM UNNEST($1::bytea[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
                     $6::timestamptz[], $7::timestamptz[], $8::int4[]) \
           AS rows (id, app, user_id, ip, user_agent, at, expires_at, ttl_secs)",
    )
    .bind(ids)
    .bind(vec![APP; n])
    .bind(user_ids)
    .bind(vec![IP; n])
    .bind(vec![USER_AGENT; n])
    .bind(ats)
    .bind(expiries)
    .bind(vec![TTL_SECS as i32; n])
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

async fn count_rows(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(pool)
        .await?)
}

async fn postgres(backend: Backend, args: &Args, services: &Services) -> Result<Report> {
    let setup_started = Instant::now();
    let url = services.database().await?;
    let store = PostgresStore::connect(&url).await?;
    store.migrate().await?;
    let app = App::parse(APP)?;
    let manager = UserManager::new(Arc::new(store));
    let users: Arc<Vec<Uuid>> = Arc::new(
        ours::create_users(&manager, &app, args.users.min(args.ops).max(1), "limit")
            .await?
            .into_iter()
            .map(|id| id.as_uuid())
            .collect(),
    );
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(&url)
        .await?;
    let ops = args.ops;
    let mut reads = Vec::new();
    if backend == Backend::RawPgSelect {
        let (pool, users) = (pool.clone(), users.clone());
        let batches = args.sessions.max(1).div_ceil(BATCH);
        let written = runner::collect(batches, SETUP_CONCURRENCY, move |b| {
            let (pool, users) = (pool.clone(), users.clone());
            async move {
                let rows: Vec<Row> = (0..BATCH).map(|j| row(&users, b * BATCH + j)).collect();
                let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.clone()).collect();
                insert_batch(&pool, rows)
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(ids)
            }
        })
        .await
        .map_err(anyhow::Error::msg)?;
        reads = written.into_iter().flatten().collect();
    }
    // Warm the pool to its full size, as the other implementations' setup does.
    let warm = pool.clone();
    runner::collect(POOL_SIZE.into(), POOL_SIZE as usize, move |_| {
        let pool = warm.clone();
        async move {
            sqlx::query("SELECT pg_sleep(0.01)")
                .execute(&pool)
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        }
    })
    .await
    .map_err(anyhow::Error::msg)?;
    let rows_before = count_rows(&pool).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();

    let reads = Arc::new(reads);
    let timed_pool = pool.clone();
    let calls = if backend == Backend::RawPgInsertBatch64 {
        ops.div_ceil(BATCH)
    } else {
        ops
    };
    let outcome = runner::run(calls, args.concurrency, move |i| {
        let (pool, users, reads) = (timed_pool.clone(), users.clone(), reads.clone());
        async move {
            match backend {
                Backend::RawPgInsert => insert_one(&pool, row(&users, i))
                    .await
                    .map_err(|err| format!("INSERT: {err}")),
                Backend::RawPgInsertBatch64 => {
                    let rows: Vec<Row> = (i * BATCH..((i + 1) * BATCH).min(ops))
                        .map(|n| row(&users, n))
                        .collect();
                    let expected = rows.len() as u64;
                    match insert_batch(&pool, rows).await {
                        Ok(n) if n == expected => Ok(()),
                        Ok(n) => Err(format!("batch INSERT wrote {n} rows of {expected}")),
                        Err(err) => Err(format!("batch INSERT: {err}")),
                    }
                }
                _ => {
                    let id = &reads[(i % reads.len() as u64) as usize];
                    let found: Option<SessionRow> = sqlx::query_as(
                        "SELECT id, app, user_id, ip, user_agent, data, created_at, expires_at, \
                         last_seen_at, ttl_secs, version FROM sessions \
                         WHERE id = $1 AND app = $2 AND expires_at > $3",
                    )
                    .bind(id)
                    .bind(APP)
                    .bind(OffsetDateTime::now_utc())
                    .fetch_optional(&pool)
                    .await
                    .map_err(|err| format!("SELECT: {err}"))?;
                    found
                        .map(drop)
                        .ok_or_else(|| "SELECT found no row for a pre-written id".to_owned())
                }
            }
        }
    })
    .await;
    let workload = match backend {
        Backend::RawPgInsert => "insert",
        Backend::RawPgInsertBatch64 => "insert-batch64",
        _ => "select",
    };
    let mut report = Report::new(
        "limit",
        backend.name(),
        workload,
        ops,
        args.concurrency,
        outcome,
    );
    report.setup_secs = setup_secs;
    let rows_after = count_rows(&pool).await?;
    let written = if backend == Backend::RawPgSelect {
        0
    } else {
        ops as i64
    };
    report.check(rows_after - rows_before == written, || {
        format!(
            "{} rows written, expected {written}",
            rows_after - rows_before
        )
    });
    pool.close().await;
    Ok(report)
}
