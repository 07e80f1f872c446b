//! Bytes per session: a dedicated pass of `K` session creates, one user each (the peer's record
//! shape: IP, a 100-character user agent, a user id, 1 h TTL), measuring Redis `used_memory` and the
//! `sessions` table's total size before and after.

use std::sync::Arc;

use anyhow::Result;
use session_management::{App, UserManager};

use crate::common::report::Footprint;
use crate::ours::{self, Ours};
use crate::services::{self, Services};

/// Measures bytes per session over `k` creates. Tiered: under a fresh key prefix (so every key the
/// pass writes is counted and nothing else), directly on Redis (never via
/// the proxy), over the same PostgreSQL database. Postgres: the table only. Other backends: nothing.
/// Notes worth reporting (the Redis bytes by key type) are added to `notes`.
pub async fn ours(
    ours: &Ours,
    services: &Services,
    app: &App,
    k: u64,
    notes: &mut Vec<String>,
) -> Result<Footprint> {
    let mut footprint = Footprint {
        sessions: k,
        ..Footprint::default()
    };
    let Some(postgres) = &ours.postgres else {
        return Ok(footprint);
    };
    let prefix = services.prefix().await?;
    let manager = if ours.tiered.is_some() {
        let tiered = ours::open_tiered(services.redis_url(), &prefix, ours.durable.clone()).await?;
        UserManager::new(Arc::new(tiered))
    } else {
        ours.manager.clone()
    };
    let users = Arc::new(ours::create_users(&manager, app, k, "footprint").await?);
    let mut redis = services::redis_connection(services.redis_url()).await?;
    let table_size = async || -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT pg_total_relation_size('sessions')")
                .fetch_one(postgres.pool())
                .await?,
        )
    };

    let pg_before = table_size().await?;
    let redis_before = services::used_memory(&mut redis).await?;
    ours::create_sessions(&manager, app, &users, k).await?;
    let redis_after = services::used_memory(&mut redis).await?;
    let pg_after = table_size().await?;

    let per_session = |bytes: f64| bytes / k as f64;
    footprint.pg_bytes_per_session = Some(per_session((pg_after - pg_before) as f64));
    if ours.tiered.is_some() {
        footprint.redis_bytes_per_session =
            Some(per_session(redis_after as f64 - redis_before as f64));
        let keys = services::scan_prefix(&mut redis, &prefix).await?;
        let by_type = services::memory_usage_by_type(&mut redis, &keys).await?;
        let usage: u64 = by_type.values().sum();
        footprint.redis_bytes_per_session_keys = Some(per_session(usage as f64));
        let split: Vec<String> = by_type
            .iter()
            .map(|(kind, bytes)| format!("{kind} keys {:.0} B", per_session(*bytes as f64)))
            .collect();
        notes.push(format!(
            "Redis MEMORY USAGE per session by key type: {}",
            split.join(", ")
        ));
        footprint.redis_keys_per_session = Some(per_session(keys.len() as f64));
        services::unlink_prefix(&mut redis, &prefix).await?;
    }
    Ok(footprint)
}
