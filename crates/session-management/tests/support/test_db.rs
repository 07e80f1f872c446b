//! A fresh PostgreSQL database per test, dropped when the test ends, even when it panicked.
//!
//! The server is reached through the admin URL in `SM_TEST_POSTGRES_URL` (default
//! `postgres://postgres:postgres@127.0.0.1:5432/postgres`); each [`TestDatabase`] is a database named
//! `sm_test_<uuid>` on it, so tests run in parallel and leave nothing behind. Include it with
//! `#[path = "support/test_db.rs"] mod test_db;`.

#![allow(dead_code)]

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// The environment variable naming the admin URL.
pub const ADMIN_URL_VARIABLE: &str = "SM_TEST_POSTGRES_URL";

const DEFAULT_ADMIN_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// A database created for one test; dropping it drops the database (`WITH (FORCE)`, so connections
/// still open to it are closed by the server).
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database with a fresh name.
    pub async fn create() -> Self {
        let admin_url =
            std::env::var(ADMIN_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("sm_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("connect to {ADMIN_URL_VARIABLE} (is PostgreSQL up?): {err}")
            });
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self {
            name,
            admin_url,
            url,
        }
    }

    /// The URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // `Drop` cannot await, and may run on a runtime worker (or while unwinding from a panic):
        // drop the database from a thread of its own, with its own runtime, and wait for it.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|err| err.to_string())?;
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await
                    .map_err(|err| err.to_string())?;
                admin.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        // Never panic here: this may run during a panic, where a second one aborts the process.
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop test database {}: {err}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: thread panicked",
                self.name
            ),
        }
    }
}

/// `url` with its database (the path) replaced by `name`, keeping any query parameters.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}
