//! `UserManagerFactory`: builds a [`UserManager`] on the store the configuration names.

use std::sync::Arc;

use crate::config::{Config, StoreSpec};
use crate::error::{Error, Result};
use crate::manager::UserManager;
use crate::store::{MemoryStore, SqliteStore, Store};

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
        let store = open_store(&config.store).await?;
        Ok(UserManager::new(store).with_max_lifetime(config.max_lifetime))
    }
}

/// Opens (and, for the embedded database, migrates) the store a [`StoreSpec`] names.
pub async fn open_store(spec: &StoreSpec) -> Result<Arc<dyn Store>> {
    match spec {
        StoreSpec::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreSpec::Sqlite { url } => {
            let store = SqliteStore::connect(url)
                .await
                .map_err(|err| unreachable_store(url, err))?;
            store.migrate().await?;
            Ok(Arc::new(store))
        }
    }
}

/// A store that cannot be opened at startup names the variable and the address, never a password.
fn unreachable_store(url: &str, err: Error) -> Error {
    match err {
        Error::Config { .. } => err,
        other => Error::Config {
            variable: "DATABASE_URL",
            reason: format!("cannot open {}: {}", redact_url(url), error_chain(&other)),
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
            format!("{scheme}://{user}:***@{host}{path}")
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
        let err = open_store(&StoreSpec::Sqlite { url }).await.unwrap_err();
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
