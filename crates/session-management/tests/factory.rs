//! The factory picks the backend from the configuration: PostgreSQL alone, Tiered over PostgreSQL
//! or SQLite (or memory) when `REDIS_URL` is set too.

#[path = "support/redis_prefix.rs"]
mod redis_prefix;
#[path = "support/test_db.rs"]
mod test_db;

use std::collections::HashMap;

use session_management::{Config, UserManagerFactory};

async fn backend(pairs: &[(&str, &str)]) -> &'static str {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let manager = UserManagerFactory::from_config(Config::from_map(&vars).unwrap())
        .await
        .unwrap();
    manager.store().backend()
}

#[tokio::test]
async fn database_url_and_redis_url_choose_the_backend() {
    let db = test_db::TestDatabase::create().await;
    let prefix = redis_prefix::TestPrefix::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("s.db").display());

    assert_eq!(backend(&[("DATABASE_URL", db.url())]).await, "postgres");
    let redis = [
        ("REDIS_URL", prefix.url()),
        ("SESSION_KEY_PREFIX", prefix.as_str()),
    ];
    assert_eq!(
        backend(&[&[("DATABASE_URL", db.url())][..], &redis].concat()).await,
        "tiered"
    );
    assert_eq!(
        backend(&[&[("DATABASE_URL", sqlite.as_str())][..], &redis].concat()).await,
        "tiered"
    );
    assert_eq!(
        backend(&[&[("SESSION_ENV", "test")][..], &redis].concat()).await,
        "tiered"
    );
    assert_eq!(backend(&[("SESSION_ENV", "test")]).await, "memory");
    assert_eq!(
        backend(&[("DATABASE_URL", sqlite.as_str())]).await,
        "sqlite"
    );
}

#[tokio::test]
async fn an_unreachable_redis_at_startup_names_the_variable() {
    let vars: HashMap<String, String> = [
        ("SESSION_ENV", "test"),
        ("REDIS_URL", "redis://:s3cret@127.0.0.1:1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let err = UserManagerFactory::from_config(Config::from_map(&vars).unwrap())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("REDIS_URL") && message.contains("127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}
