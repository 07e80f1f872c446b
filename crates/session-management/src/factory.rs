//! `UserManagerFactory`: builds a [`UserManager`] on the store the configuration names.

use std::sync::Arc;

use crate::config::{Config, RedisSpec, StoreSpec};
use crate::error::{Error, Result};
use crate::manager::UserManager;
use crate::store::{
    MemoryStore, PostgresStore, RedisSessionCache, SqliteStore, Store, TieredStore,
};

/// Picks and opens the backend from the environment, as the seed's `UserManagerFactory` did.
#[derive(Debug, Clone, Copy)]
pub struct UserManagerFactory;

impl UserManagerFactory {
    /// Reads the environment (and `.env`), opens the store it names, migrates an embedded database,
    /// and returns the manager. A missing or unreachable required store is an error naming the variable.
    pub async fn create() -> Result<UserManager> {
        Self::from_config(Config::from_env()?).await
    }

    /// Like [`create`](Self::create), from an already parsed configuration.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> session_management::Result<()> {
    /// use std::collections::HashMap;
    /// use session_management::{Config, UserManagerFactory};
    ///
    /// let vars = HashMap::from([("SESSION_ENV".to_owned(), "test".to_owned())]);
    /// let manager = UserManagerFactory::from_config(Config::from_map(&vars)?).await?;
    /// assert_eq!(manager.store().backend(), "memory");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_config(config: Config) -> Result<UserManager> {
        let store = open(&config.store, config.redis.as_ref()).await?;
        Ok(UserManager::new(store).with_max_lifetime(config.max_lifetime))
    }
}

/// Opens and migrates the durable store a [`StoreSpec`] names and, with a [`RedisSpec`], puts a
/// [`TieredStore`] in front of it. The migrators take a lock (an advisory lock on PostgreSQL), so
/// several instances starting at once is safe.
pub async fn open(spec: &StoreSpec, redis: Option<&RedisSpec>) -> Result<Arc<dyn Store>> {
    let outbox = redis.is_some();
    let durable: Arc<dyn Store> = match spec {
        StoreSpec::Memory if outbox => Arc::new(MemoryStore::with_invalidation_outbox()),
        StoreSpec::Memory => Arc::new(MemoryStore::new()),
        StoreSpec::Sqlite { url } => {
            let store = SqliteStore::connect(url)
                .await
                .map_err(|err| unreachable_store("DATABASE_URL", url, err))?;
            if outbox {
                Arc::new(store.with_invalidation_outbox())
            } else {
                Arc::new(store)
            }
        }
        StoreSpec::Postgres { url } => {
            let store = PostgresStore::connect(url)
                .await
                .map_err(|err| unreachable_store("DATABASE_URL", url, err))?;
            if outbox {
                Arc::new(store.with_invalidation_outbox())
            } else {
                Arc::new(store)
            }
        }
    };
    durable.migrate().await?;
    let Some(redis) = redis else {
        return Ok(durable);
    };
    let hot =
        RedisSessionCache::connect(&redis.url, &redis.key_prefix, redis.options.redis_timeout)
            .await
            .map_err(|err| unreachable_store("REDIS_URL", &redis.url, err))?;
    let tiered = TieredStore::new(hot, durable, redis.options)?;
    // Replays what other instances could not tell Redis, and makes Redis trusted for reads.
    if let Err(err) = tiered.maintain().await {
        tracing::warn!(error = %err, "Redis not trusted yet: reads use the durable store until the outbox is replayed");
    }
    Ok(Arc::new(tiered))
}

/// A store that cannot be opened at startup names the variable and the address, never a password.
fn unreachable_store(variable: &'static str, url: &str, err: Error) -> Error {
    match err {
        Error::Config { .. } => err,
        other => Error::Config {
            variable,
            reason: format!("cannot reach {}: {}", redact_url(url), error_chain(&other)),
        },
    }
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        out.push_str(": ");
        out.push_str(&next.to_string());
        source = next.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_stores_name_the_variable_and_address_but_not_the_password() {
        let spec = StoreSpec::Postgres {
            url: "postgres://app:hunter2@127.0.0.1:1/sm".into(),
        };
        let err = open(&spec, None).await.unwrap_err().to_string();
        assert!(
            err.contains("DATABASE_URL") && err.contains("127.0.0.1:1"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");

        let redis = RedisSpec {
            url: "redis://:hunter2@127.0.0.1:1".into(),
            key_prefix: "sm:".into(),
            options: Default::default(),
        };
        let err = open(&StoreSpec::Memory, Some(&redis))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("127.0.0.1:1"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/sm"),
            "postgres://app:***@db:5432/sm"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }

    #[tokio::test]
    async fn an_unopenable_sqlite_path_is_a_config_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"not a directory").unwrap();
        let url = format!("sqlite://{}/sub/sessions.db", file.display());
        let err = open(&StoreSpec::Sqlite { url }, None).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    variable: "DATABASE_URL",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
