//! What the tiered store leaves at rest: the documented Redis layout, no token anywhere, and resets
//! that stay inside their app and prefix.

use session_management::{App, Store};

use crate::deployment::{Deployment, Durable, sessions, user, web};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_postgres_hold_no_token_and_redis_follows_the_key_layout() {
    let deployment = Deployment::postgres().await;
    let instance = deployment.instance().await;
    let ada = user(&instance.manager, "ada@example.com").await;
    let mut issued = sessions(&instance.manager, &ada, 3).await;
    let (old, _) = issued.pop().unwrap();
    let (rotated, _) = instance.manager.rotate(&web(), &old).await.unwrap();
    instance
        .manager
        .revoke_by_token(&web(), &issued[0].0)
        .await
        .unwrap();
    let mut tokens: Vec<String> = issued
        .iter()
        .map(|(t, _)| t.expose_secret().to_owned())
        .collect();
    tokens.push(old.expose_secret().to_owned());
    tokens.push(rotated.expose_secret().to_owned());

    let dump = deployment.prefix.dump().await;
    assert!(!dump.is_empty());
    let prefix = deployment.prefix.as_str().as_bytes();
    for (key, value) in &dump {
        assert!(key.starts_with(prefix), "every key is under the prefix");
        let rest = &key[prefix.len()..];
        assert!(
            [&b"web:s:{"[..], b"web:r:{"]
                .iter()
                .any(|kind| rest.starts_with(kind)),
            "{}",
            String::from_utf8_lossy(key)
        );
        for token in &tokens {
            let token = token.as_bytes();
            assert!(
                !key.windows(token.len()).any(|w| w == token),
                "token in a Redis key"
            );
            assert!(
                !value.windows(token.len()).any(|w| w == token),
                "token in a Redis value"
            );
        }
        if rest.starts_with(b"web:s:") {
            assert!(value.len() < 120, "compact encoding: {} bytes", value.len());
        }
    }
    let kinds = |kind: &[u8]| {
        dump.iter()
            .filter(|(k, _)| k[prefix.len()..].starts_with(kind))
            .count()
    };
    assert_eq!(kinds(b"web:s:"), 2, "two live sessions cached");
    assert_eq!(
        kinds(b"web:r:"),
        2,
        "the rotated-away and the revoked session have tombstones"
    );

    let Durable::Postgres(db) = &deployment.durable else {
        unreachable!()
    };
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT s::text FROM sessions s UNION ALL SELECT u::text FROM users u \
         UNION ALL SELECT o::text FROM invalidation_outbox o",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(rows.len() >= 3);
    for row in &rows {
        for token in &tokens {
            assert!(!row.contains(token.as_str()), "token stored in PostgreSQL");
        }
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_deletes_one_apps_rows_and_redis_keys_and_nothing_else() {
    let deployment = Deployment::postgres().await;
    let other_prefix = Deployment::postgres().await;
    let instance = deployment.instance().await;
    let neighbour = other_prefix.instance().await;
    let admin = App::parse("admin").unwrap();

    let ada = user(&instance.manager, "ada@example.com").await;
    let web_sessions = sessions(&instance.manager, &ada, 3).await;
    let boss = instance
        .manager
        .create(
            &admin,
            session_management::CreateUserData {
                email: "boss@example.com".into(),
                name: "Boss".into(),
            },
        )
        .await
        .unwrap();
    let (admin_token, _) = instance
        .manager
        .create_session(
            &admin,
            boss.id,
            crate::deployment::metadata(),
            session_management::Ttl::from_secs(60).unwrap(),
        )
        .await
        .unwrap();
    let neighbour_user = user(&neighbour.manager, "ada@example.com").await;
    let (neighbour_token, _) = sessions(&neighbour.manager, &neighbour_user, 1)
        .await
        .pop()
        .unwrap();
    let neighbour_keys = other_prefix.prefix.count_keys().await;

    let deleted = instance.manager.reset_app(&web(), |_| {}).await.unwrap();
    assert_eq!(deleted, 4, "three sessions and one user");

    let dump = deployment.prefix.dump().await;
    let prefix = deployment.prefix.as_str().as_bytes();
    assert!(
        dump.iter()
            .all(|(k, _)| k[prefix.len()..].starts_with(b"admin:")),
        "only admin keys remain"
    );
    assert!(!dump.is_empty());
    for (token, _) in &web_sessions {
        assert!(
            instance
                .manager
                .validate(&web(), token)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(
        instance
            .manager
            .validate(&admin, &admin_token)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        other_prefix.prefix.count_keys().await,
        neighbour_keys,
        "another prefix is untouched"
    );
    assert!(
        neighbour
            .manager
            .validate(&web(), &neighbour_token)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        instance
            .tiered
            .pending_invalidations(10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revokes_share_drains_and_each_is_final_when_it_returns() {
    let deployment = Deployment::postgres().await;
    let a = deployment.instance().await;
    let b = deployment.instance().await;
    let ada = user(&a.manager, "ada@example.com").await;
    let created = sessions(&a.manager, &ada, 40).await;
    for (token, _) in &created {
        assert!(
            b.manager.validate(&web(), token).await.unwrap().is_some(),
            "cached on B"
        );
    }
    let revokes: Vec<_> = created
        .into_iter()
        .map(|(token, session)| {
            let (a, b) = (a.manager.clone(), b.manager.clone());
            tokio::spawn(async move {
                a.revoke(&web(), &session.id).await.unwrap();
                // The moment revoke returns, no instance may accept the token.
                assert!(b.validate(&web(), &token).await.unwrap().is_none());
                assert!(a.validate(&web(), &token).await.unwrap().is_none());
            })
        })
        .collect();
    for revoke in revokes {
        revoke.await.unwrap();
    }
    assert!(a.tiered.pending_invalidations(10).await.unwrap().is_empty());
    let dump = deployment.prefix.dump().await;
    let prefix = deployment.prefix.as_str().len();
    let count = |kind: &[u8]| {
        dump.iter()
            .filter(|(k, _)| k[prefix..].starts_with(kind))
            .count()
    };
    assert_eq!(count(b"web:s:"), 0, "no cached session left");
    assert_eq!(count(b"web:r:"), 40, "a tombstone for each");
}
