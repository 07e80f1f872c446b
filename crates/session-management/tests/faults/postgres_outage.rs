//! PostgreSQL cut: cached sessions still validate, writes fail with `Unavailable`, and once it is back
//! both stores agree.

use std::time::Duration;

use session_management::{CreateUserData, Error, Store, Ttl};

use crate::deployment::{Deployment, eventually, metadata, sessions, user, web};

fn unavailable<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(
            result,
            Err(Error::Unavailable {
                store: "postgres",
                ..
            })
        ),
        "expected postgres unavailable, got {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_keeps_cached_sessions_valid_and_fails_writes_cleanly() {
    let deployment = Deployment::postgres().await;
    let instance = deployment.instance().await;
    let manager = &instance.manager;
    let ada = user(manager, "ada@example.com").await;
    let created = sessions(manager, &ada, 5).await;
    let keys_before = deployment.prefix.count_keys().await;
    let pg = deployment.pg_proxy.as_ref().unwrap();

    pg.cut();
    for (token, session) in &created {
        let found = manager.validate(&web(), token).await.unwrap();
        assert_eq!(
            found.map(|s| s.id),
            Some(session.id),
            "cached sessions validate from Redis"
        );
    }
    let ttl = Ttl::from_secs(60).unwrap();
    unavailable(
        manager
            .create_session(&web(), ada.id, metadata(), ttl)
            .await,
    );
    unavailable(
        manager
            .create(
                &web(),
                CreateUserData {
                    email: "bob@example.com".into(),
                    name: "Bob".into(),
                },
            )
            .await,
    );
    unavailable(manager.revoke(&web(), &created[0].1.id).await);
    // Listing needs the complete answer, which only the durable store has.
    unavailable(manager.list_sessions(&web(), ada.id).await);
    assert_eq!(
        deployment.prefix.count_keys().await,
        keys_before,
        "nothing half-written in Redis"
    );

    pg.restore();
    let back = eventually(Duration::from_secs(10), async || {
        manager.get(&web(), ada.id).await.is_ok()
    })
    .await;
    assert!(back, "PostgreSQL answers again");
    // Both stores agree: exactly the five sessions, all valid, in both.
    let durable = manager.list_sessions(&web(), ada.id).await.unwrap();
    assert_eq!(durable.len(), 5);
    let cached = instance.tiered.clone();
    for (token, session) in &created {
        assert_eq!(
            manager.validate(&web(), token).await.unwrap().map(|s| s.id),
            Some(session.id)
        );
    }
    assert_eq!(deployment.prefix.count_keys().await, keys_before);
    assert!(cached.pending_invalidations(10).await.unwrap().is_empty());
    // And writes work again.
    manager.revoke(&web(), &created[0].1.id).await.unwrap();
    assert!(
        manager
            .validate(&web(), &created[0].0)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_right_after_postgres_dropped_every_connection_succeed() {
    let deployment = Deployment::postgres().await;
    let instance = deployment.instance().await;
    let manager = &instance.manager;
    let ada = user(manager, "ada@example.com").await;
    // Creates alone and together, so connections are open (and kept by the insert batches).
    sessions(manager, &ada, 3).await;
    let together = async |n: usize| {
        let mut creates = tokio::task::JoinSet::new();
        for _ in 0..n {
            let manager = manager.clone();
            creates.spawn(async move {
                manager
                    .create_session(&web(), ada.id, metadata(), Ttl::from_secs(60).unwrap())
                    .await
            });
        }
        creates.join_all().await
    };
    for created in together(20).await {
        created.unwrap();
    }

    // Every connection dropped with nothing in flight, as by a PostgreSQL restart.
    let pg = deployment.pg_proxy.as_ref().unwrap();
    pg.cut();
    pg.restore();

    // The very next creates succeed: a broken connection is replaced, not reported.
    let (token, _) = manager
        .create_session(&web(), ada.id, metadata(), Ttl::from_secs(60).unwrap())
        .await
        .expect("a create right after the restart");
    assert!(manager.validate(&web(), &token).await.unwrap().is_some());
    for created in together(20).await {
        created.expect("concurrent creates right after the restart");
    }
    assert_eq!(
        manager.list_sessions(&web(), ada.id).await.unwrap().len(),
        44
    );
}
