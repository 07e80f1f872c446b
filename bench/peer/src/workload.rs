//! What both of the peer's stores run, through the `SessionStore` trait: untimed creates for the
//! setup, and the timed `create` or `load` of every operation.

use std::sync::Arc;

use anyhow::Result;
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::Id;

use crate::common::runner::{self, Outcome};
use crate::record;

/// Concurrency of untimed setup work.
const SETUP_CONCURRENCY: usize = 64;

/// `n` new record ids.
pub fn fresh_ids(n: u64) -> Arc<Vec<Id>> {
    Arc::new((0..n).map(|_| Id::default()).collect())
}

/// Creates `ids.len()` records (record `i` with id `ids[i]` for user `users[i % users.len()]`).
pub async fn create_all<S: SessionStore>(
    store: &Arc<S>,
    ids: &Arc<Vec<Id>>,
    users: &Arc<Vec<String>>,
) -> Result<()> {
    let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
    runner::collect(ids.len() as u64, SETUP_CONCURRENCY, move |i| {
        let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
        async move {
            let mut record = record(ids[i as usize], &users[i as usize % users.len()]);
            store.create(&mut record).await.map_err(|e| e.to_string())?;
            if record.id != ids[i as usize] {
                return Err("the id collided and was replaced".to_owned());
            }
            Ok(())
        }
    })
    .await
    .map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The timed section: `ops` operations at `concurrency`. With `load`, operation `i` loads record
/// `ids[i % len]` and must get that very record; otherwise it creates record `ids[i]` for user
/// `users[i]`.
pub async fn timed<S: SessionStore>(
    store: &Arc<S>,
    ids: &Arc<Vec<Id>>,
    users: &Arc<Vec<String>>,
    load: bool,
    ops: u64,
    concurrency: usize,
) -> Outcome {
    let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
    runner::run(ops, concurrency, move |i| {
        let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
        async move {
            if load {
                let id = ids[(i % ids.len() as u64) as usize];
                match store.load(&id).await {
                    Ok(Some(found)) if found.id == id => Ok(()),
                    Ok(Some(_)) => Err("load returned another record".to_owned()),
                    Ok(None) => Err("load returned None for a live record".to_owned()),
                    Err(err) => Err(format!("load: {err}")),
                }
            } else {
                let mut record = record(ids[i as usize], &users[i as usize]);
                store
                    .create(&mut record)
                    .await
                    .map_err(|err| format!("create: {err}"))
            }
        }
    })
    .await
}
