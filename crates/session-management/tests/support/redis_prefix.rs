//! A Redis key prefix per test on the shared Redis, whose keys are deleted (`SCAN` + `UNLINK`, never
//! `FLUSHALL`) when the test ends, even when it panicked. The server is `SM_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). Include it with `#[path = "support/redis_prefix.rs"] mod redis_prefix;`.

#![allow(dead_code)]

/// The environment variable naming the test Redis.
pub const REDIS_URL_VARIABLE: &str = "SM_TEST_REDIS_URL";

/// The test Redis URL.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VARIABLE).unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A unique key prefix; its keys go when it is dropped.
pub struct TestPrefix {
    prefix: String,
    url: String,
}

impl TestPrefix {
    /// A fresh prefix `smtest:<uuid>:`.
    pub fn new() -> Self {
        Self {
            prefix: format!("smtest:{}:", uuid::Uuid::now_v7().simple()),
            url: redis_url(),
        }
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many keys exist under the prefix.
    pub async fn count_keys(&self) -> usize {
        keys(&self.url, &self.prefix).await.len()
    }

    /// The raw values of every key under the prefix.
    pub async fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut out = Vec::new();
        for key in keys(&self.url, &self.prefix).await {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![
                    redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                ],
                "hash" => redis::cmd("HKEYS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                _ => Vec::new(),
            };
            if values.is_empty() {
                // Every key shows, even one whose type is not read above.
                out.push((key.clone(), Vec::new()));
            }
            for value in values {
                out.push((key.clone(), value));
            }
        }
        out
    }
}

async fn keys(url: &str, prefix: &str) -> Vec<Vec<u8>> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor: u64 = 0;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        all.extend(keys);
        if next == 0 {
            return all;
        }
        cursor = next;
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let found = keys(&url, &prefix).await;
                if found.is_empty() {
                    return;
                }
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                for chunk in found.chunks(500) {
                    let _: u64 = redis::cmd("UNLINK")
                        .arg(chunk)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
            });
        })
        .join();
        if cleaned.is_err() {
            eprintln!(
                "warning: could not delete the Redis keys under {}",
                self.prefix
            );
        }
    }
}
