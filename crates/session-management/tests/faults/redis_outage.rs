//! Redis cut, black-holed or restarted: nobody is logged out, nothing revoked comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use session_management::store::breaker::BreakerState;
use session_management::{Store, Ttl};

use crate::deployment::{Deployment, PrivateRedis, eventually, metadata, sessions, user, web};
use crate::fault_proxy::FaultProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_under_concurrent_load_fails_no_validation_and_no_create() {
    let deployment = Deployment::postgres().await;
    let instance = deployment.instance().await;
    let ada = user(&instance.manager, "ada@example.com").await;
    let existing = Arc::new(sessions(&instance.manager, &ada, 40).await);

    let failures = Arc::new(AtomicUsize::new(0));
    let operations = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1800);
    let mut workers = Vec::new();
    for worker in 0..12 {
        let (manager, existing) = (instance.manager.clone(), existing.clone());
        let (failures, operations) = (failures.clone(), operations.clone());
        let user_id = ada.id;
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while tokio::time::Instant::now() < deadline {
                i += 7;
                let ok = if i % 10 == 0 {
                    let ttl = Ttl::from_secs(600).unwrap();
                    manager
                        .create_session(&web(), user_id, metadata(), ttl)
                        .await
                        .is_ok()
                } else {
                    let (token, _) = &existing[i % existing.len()];
                    matches!(manager.validate(&web(), token).await, Ok(Some(_)))
                };
                operations.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    deployment.redis_proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(
        instance.tiered.breaker_state(),
        BreakerState::Closed,
        "the breaker noticed the cut"
    );
    deployment.redis_proxy.restore();
    for worker in workers {
        worker.await.unwrap();
    }
    let ops = operations.load(Ordering::Relaxed);
    assert!(ops > 100, "the load ran ({ops} operations)");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {ops} operations");

    // Redis is used again once it is back.
    assert!(
        eventually(Duration::from_secs(3), async || instance
            .tiered
            .redis_trusted())
        .await,
        "Redis trusted again after restore"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_revoked_while_redis_is_cut_never_validates_again_on_any_instance() {
    let deployment = Deployment::postgres().await;
    let a = deployment.instance().await;
    let b = deployment.instance().await;
    let ada = user(&a.manager, "ada@example.com").await;
    let mut created = sessions(&a.manager, &ada, 3).await;
    let (kept, _) = created.pop().unwrap();
    let (revoked, revoked_session) = created.pop().unwrap();
    // Both instances see it, and it is cached in Redis.
    assert!(
        a.manager
            .validate(&web(), &revoked)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.manager
            .validate(&web(), &revoked)
            .await
            .unwrap()
            .is_some()
    );
    let cached_before = deployment.prefix.count_keys().await;

    deployment.redis_proxy.cut();
    a.manager.revoke(&web(), &revoked_session.id).await.unwrap();
    assert!(
        a.manager
            .validate(&web(), &revoked)
            .await
            .unwrap()
            .is_none()
    );
    // Redis still holds its old copy: nothing could reach it.
    assert_eq!(deployment.prefix.count_keys().await, cached_before);
    tokio::time::sleep(Duration::from_millis(500)).await;
    deployment.redis_proxy.restore();

    // From the moment Redis is back, on both instances, for a while: never valid again.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        assert!(
            a.manager
                .validate(&web(), &revoked)
                .await
                .unwrap()
                .is_none(),
            "instance A"
        );
        assert!(
            b.manager
                .validate(&web(), &revoked)
                .await
                .unwrap()
                .is_none(),
            "instance B"
        );
        assert!(
            a.manager.validate(&web(), &kept).await.unwrap().is_some(),
            "the other session stays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        a.tiered.redis_trusted() && b.tiered.redis_trusted(),
        "Redis is used again"
    );
    let outbox = a.tiered.pending_invalidations(10).await.unwrap();
    assert!(outbox.is_empty(), "the outbox was replayed: {outbox:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_from_an_instance_cut_off_from_redis_reaches_the_others_within_a_second() {
    let deployment = Deployment::postgres().await;
    let isolated_link =
        FaultProxy::start(crate::deployment::addr_of(&crate::redis_prefix::redis_url()))
            .await
            .unwrap();
    let a = deployment.instance_via(&isolated_link).await;
    let b = deployment.instance().await;
    let ada = user(&b.manager, "ada@example.com").await;
    let (token, session) = sessions(&b.manager, &ada, 1).await.pop().unwrap();
    assert!(b.manager.validate(&web(), &token).await.unwrap().is_some());

    isolated_link.cut();
    a.manager.revoke(&web(), &session.id).await.unwrap();
    let revoked_at = tokio::time::Instant::now();
    assert!(a.manager.validate(&web(), &token).await.unwrap().is_none());
    let stopped = eventually(Duration::from_millis(1500), async || {
        b.manager.validate(&web(), &token).await.unwrap().is_none()
    })
    .await;
    assert!(stopped, "B still validates the revoked session after 1.5 s");
    eprintln!(
        "revocation reached instance B after {:?}",
        revoked_at.elapsed()
    );
    for _ in 0..20 {
        assert!(
            b.manager.validate(&web(), &token).await.unwrap().is_none(),
            "and stays revoked"
        );
    }
    isolated_link.restore();
    assert!(
        eventually(Duration::from_secs(3), async || a.tiered.redis_trusted()).await,
        "A trusts Redis again once it can reach it"
    );
    assert!(a.manager.validate(&web(), &token).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_keeps_every_session_valid_and_repopulates_it() {
    let mut redis = PrivateRedis::start().await;
    let deployment = Deployment::postgres_with_redis_at(redis.addr()).await;
    let instance = deployment.instance().await;
    let ada = user(&instance.manager, "ada@example.com").await;
    let created = sessions(&instance.manager, &ada, 20).await;

    redis.kill();
    for (token, session) in &created {
        let found = instance.manager.validate(&web(), token).await.unwrap();
        assert_eq!(
            found.map(|s| s.id),
            Some(session.id),
            "served by PostgreSQL while Redis is down"
        );
    }
    redis.restart_empty().await;
    assert!(
        eventually(Duration::from_secs(5), async || instance
            .tiered
            .redis_trusted())
        .await,
        "Redis trusted again after its restart"
    );
    for (token, session) in &created {
        let found = instance.manager.validate(&web(), token).await.unwrap();
        assert_eq!(found.map(|s| s.id), Some(session.id));
    }
    // Every validation wrote its session back: 20 sessions, and nothing else.
    let client = redis::Client::open(format!("redis://{}", redis.addr())).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{}*", deployment.prefix.as_str()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let keys: Vec<String> = keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| k.contains(":s:")).count(),
        20,
        "{keys:?}"
    );
    assert_eq!(keys.len(), 20, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_could_not_tell_redis_does_not_read_it_until_the_outbox_is_replayed() {
    let deployment = Deployment::postgres().await;
    // No background task: the test decides when the outbox is replayed.
    let a = deployment
        .instance_with_clock(session_management::ManualClock::new())
        .await;
    let ada = user(&a.manager, "ada@example.com").await;
    let (token, session) = sessions(&a.manager, &ada, 1).await.pop().unwrap();
    assert!(a.manager.validate(&web(), &token).await.unwrap().is_some());
    assert!(a.tiered.redis_trusted());

    deployment.redis_proxy.cut();
    a.manager.revoke(&web(), &session.id).await.unwrap();
    deployment.redis_proxy.restore();
    assert_eq!(
        a.tiered.breaker_state(),
        BreakerState::Closed,
        "one failure does not open it"
    );
    assert!(!a.tiered.redis_trusted(), "but Redis missed a revocation");
    // Redis still has the stale copy; reads must not use it.
    for _ in 0..10 {
        assert!(a.manager.validate(&web(), &token).await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.tiered.pending_invalidations(10).await.unwrap().len(), 1);

    a.tiered.maintain().await.unwrap();
    assert!(a.tiered.redis_trusted(), "replayed: Redis is trusted again");
    assert!(a.tiered.pending_invalidations(10).await.unwrap().is_empty());
    assert!(a.manager.validate(&web(), &token).await.unwrap().is_none());
    let dump = deployment.prefix.dump().await;
    assert!(
        dump.iter()
            .any(|(key, _)| key.windows(3).any(|w| w == b":r:")),
        "a tombstone guards it"
    );
    assert!(
        !dump
            .iter()
            .any(|(key, _)| key.windows(3).any(|w| w == b":s:")),
        "the stale copy is gone"
    );
}
