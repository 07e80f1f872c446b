//! Sessions: create, validate, expiry, touch, rotate, data, revoke, list, purge, isolation, reset.

use std::time::Duration;

use serde_json::json;
use session_management::{ConflictKind, Error, SessionData, SessionMetadata, SessionToken};

use crate::harness::{Harness, app, metadata, ttl};

fn not_found<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::NotFound { what: w }) if w == what => {}
        other => panic!("expected {what} not found, got {other:?}"),
    }
}

pub async fn session_validates_with_its_own_token_only(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (token, session) = h.session(&web, &ada, 3600).await;
    assert_eq!(session.id, token.id());
    assert_eq!(session.user_id, ada.id);
    assert_eq!(session.version, 1);
    assert_eq!(
        session.expires_at - session.created_at,
        time::Duration::seconds(3600)
    );

    let valid = h.manager.validate(&web, &token).await.unwrap();
    assert_eq!(valid, Some(session.clone()));
    let reparsed = SessionToken::parse(token.expose_secret()).unwrap();
    assert_eq!(
        h.manager.validate(&web, &reparsed).await.unwrap(),
        Some(session)
    );

    let stranger = SessionToken::generate().unwrap();
    assert_eq!(h.manager.validate(&web, &stranger).await.unwrap(), None);
}

pub async fn session_keeps_metadata_and_data(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let meta = SessionMetadata::parse("2001:db8::1", &"u".repeat(512)).unwrap();
    let data =
        SessionData::parse(json!({"cart": [1, 2, 3], "theme": "dark", "nested": {"a": null}}))
            .unwrap();
    let (token, created) = h
        .manager
        .create_session_with_data(&web, ada.id, meta.clone(), ttl(60), data.clone())
        .await
        .unwrap();
    let read = h.manager.validate(&web, &token).await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(read.metadata, meta);
    assert_eq!(read.data, data);
    assert_eq!(read.ttl, ttl(60));
}

pub async fn session_never_validates_at_or_after_expires_at(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (token, _) = h.session(&web, &ada, 10).await;
    h.advance(9.999);
    assert!(h.manager.validate(&web, &token).await.unwrap().is_some());
    h.advance(0.001);
    assert!(
        h.manager.validate(&web, &token).await.unwrap().is_none(),
        "dead at expires_at"
    );
    assert!(
        h.manager
            .list_sessions(&web, ada.id)
            .await
            .unwrap()
            .is_empty()
    );
    h.advance(3600.0);
    assert!(h.manager.validate(&web, &token).await.unwrap().is_none());
}

pub async fn touch_extends_only_when_less_than_half_the_ttl_remains(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (token, created) = h.session(&web, &ada, 100).await;

    h.advance(40.0);
    let untouched = h.manager.touch(&web, &token).await.unwrap();
    assert_eq!(
        untouched.expires_at, created.expires_at,
        "60% left: no write"
    );
    assert_eq!(untouched.last_seen_at, created.last_seen_at);

    h.advance(20.0);
    let touched = h.manager.touch(&web, &token).await.unwrap();
    let now = created.created_at + time::Duration::seconds(60);
    assert_eq!(
        touched.expires_at,
        now + time::Duration::seconds(100),
        "40% left: a full TTL from now"
    );
    assert_eq!(touched.last_seen_at, now);
    assert_eq!(
        h.manager.validate(&web, &token).await.unwrap(),
        Some(touched)
    );

    // Past the original expiry it still validates, because it was extended.
    h.advance(50.0);
    assert!(h.manager.validate(&web, &token).await.unwrap().is_some());
}

pub async fn touch_never_extends_past_the_maximum_lifetime(h: &Harness) {
    let web = app("web");
    let capped = h.manager_with_max_lifetime(Duration::from_secs(150));
    let ada = h.user(&web, "ada@example.com").await;
    let (token, created) = capped
        .create_session(&web, ada.id, metadata(), ttl(100))
        .await
        .unwrap();
    let cap = created.created_at + time::Duration::seconds(150);

    h.advance(90.0);
    assert_eq!(
        capped.touch(&web, &token).await.unwrap().expires_at,
        cap,
        "clamped to the cap"
    );
    h.advance(40.0);
    assert_eq!(
        capped.touch(&web, &token).await.unwrap().expires_at,
        cap,
        "never moves past it"
    );
    h.advance(20.0);
    assert!(
        capped.validate(&web, &token).await.unwrap().is_none(),
        "dead at the cap"
    );
    not_found(capped.touch(&web, &token).await, "session");

    let err = capped
        .create_session(&web, ada.id, metadata(), ttl(151))
        .await
        .unwrap_err();
    assert_eq!(
        err.field(),
        Some("ttl"),
        "a TTL past the cap is refused: {err:?}"
    );
}

pub async fn rotation_issues_a_new_token_and_the_old_one_dies_at_once(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let data = SessionData::parse(json!({"role": "reader"})).unwrap();
    let (old_token, old) = h
        .manager
        .create_session_with_data(&web, ada.id, metadata(), ttl(3600), data.clone())
        .await
        .unwrap();
    h.advance(5.0);

    let (new_token, new) = h.manager.rotate(&web, &old_token).await.unwrap();
    assert_ne!(new_token.expose_secret(), old_token.expose_secret());
    assert_eq!(new.id, new_token.id());
    assert_ne!(new.id, old.id);
    assert_eq!(
        (new.user_id, &new.data, new.created_at, new.expires_at),
        (old.user_id, &data, old.created_at, old.expires_at)
    );
    assert_eq!(
        new.last_seen_at,
        old.created_at + time::Duration::seconds(5)
    );

    assert!(
        h.manager
            .validate(&web, &old_token)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        h.manager.validate(&web, &new_token).await.unwrap(),
        Some(new.clone())
    );
    not_found(h.manager.rotate(&web, &old_token).await, "session");
    not_found(h.manager.revoke(&web, &old.id).await, "session");
    let listed = h.manager.list_sessions(&web, ada.id).await.unwrap();
    assert_eq!(listed, vec![new]);
}

pub async fn concurrent_rotations_of_one_token_let_exactly_one_win(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (token, _) = h.session(&web, &ada, 3600).await;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let manager = h.manager.clone();
            let (web, token) = (web.clone(), token.clone());
            tokio::spawn(async move { manager.rotate(&web, &token).await })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok((new_token, _)) => winners.push(new_token),
            Err(Error::NotFound { .. }) | Err(Error::Conflict(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation succeeds");
    assert!(
        h.manager
            .validate(&web, &winners[0])
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        h.manager.list_sessions(&web, ada.id).await.unwrap().len(),
        1
    );
}

pub async fn update_data_is_optimistic_and_a_stale_version_conflicts(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (token, session) = h.session(&web, &ada, 3600).await;
    assert!(session.data.is_empty());

    let first = SessionData::parse(json!({"step": 1})).unwrap();
    let v2 = h
        .manager
        .update_data(&web, &session.id, first.clone(), 1)
        .await
        .unwrap();
    assert_eq!((v2.version, &v2.data), (2, &first));

    let stale = h
        .manager
        .update_data(
            &web,
            &session.id,
            SessionData::parse(json!({"step": "lost"})).unwrap(),
            1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale, Error::Conflict(ConflictKind::StaleVersion)),
        "{stale:?}"
    );
    let current = h.manager.validate(&web, &token).await.unwrap().unwrap();
    assert_eq!(
        (current.version, &current.data),
        (2, &first),
        "the stale write changed nothing"
    );

    let v3 = h
        .manager
        .update_data(&web, &session.id, SessionData::default(), 2)
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    assert!(v3.data.is_empty());
}

pub async fn revoke_by_id_and_by_token_are_final(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (t1, s1) = h.session(&web, &ada, 3600).await;
    let (t2, _) = h.session(&web, &ada, 3600).await;

    h.manager.revoke(&web, &s1.id).await.unwrap();
    assert!(h.manager.validate(&web, &t1).await.unwrap().is_none());
    not_found(h.manager.revoke(&web, &s1.id).await, "session");

    h.manager.revoke_by_token(&web, &t2).await.unwrap();
    assert!(h.manager.validate(&web, &t2).await.unwrap().is_none());
    not_found(h.manager.revoke_by_token(&web, &t2).await, "session");
    assert!(
        h.manager
            .list_sessions(&web, ada.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn no_write_brings_back_a_revoked_or_expired_session(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (revoked, revoked_session) = h.session(&web, &ada, 100).await;
    let (expired, expired_session) = h.session(&web, &ada, 10).await;
    h.manager.revoke_by_token(&web, &revoked).await.unwrap();
    h.advance(10.0);

    for (token, session) in [(&revoked, &revoked_session), (&expired, &expired_session)] {
        not_found(h.manager.touch(&web, token).await, "session");
        not_found(h.manager.rotate(&web, token).await, "session");
        not_found(
            h.manager
                .update_data(&web, &session.id, SessionData::default(), session.version)
                .await,
            "session",
        );
        assert!(h.manager.validate(&web, token).await.unwrap().is_none());
    }
    assert!(
        h.manager
            .list_sessions(&web, ada.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn list_sessions_shows_only_that_users_live_sessions(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let bob = h.user(&web, "bob@example.com").await;
    let (_, long) = h.session(&web, &ada, 3600).await;
    h.advance(1.0);
    let (_, short) = h.session(&web, &ada, 5).await;
    h.session(&web, &bob, 3600).await;

    let listed = h.manager.list_sessions(&web, ada.id).await.unwrap();
    assert_eq!(
        listed,
        vec![long.clone(), short],
        "oldest first, only ada's"
    );
    h.advance(5.0);
    assert_eq!(
        h.manager.list_sessions(&web, ada.id).await.unwrap(),
        vec![long]
    );
}

pub async fn revoke_all_revokes_only_that_users_sessions(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let bob = h.user(&web, "bob@example.com").await;
    let ada_tokens = [
        h.session(&web, &ada, 60).await.0,
        h.session(&web, &ada, 60).await.0,
        h.session(&web, &ada, 60).await.0,
    ];
    let (bob_token, _) = h.session(&web, &bob, 60).await;

    assert_eq!(h.manager.revoke_all(&web, ada.id).await.unwrap(), 3);
    for token in &ada_tokens {
        assert!(h.manager.validate(&web, token).await.unwrap().is_none());
    }
    assert!(
        h.manager
            .validate(&web, &bob_token)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(h.manager.revoke_all(&web, ada.id).await.unwrap(), 0);
    assert!(h.manager.get(&web, ada.id).await.is_ok(), "the user stays");
}

pub async fn purge_expired_deletes_only_expired_sessions(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    for _ in 0..3 {
        h.session(&web, &ada, 10).await;
    }
    let (live, _) = h.session(&web, &ada, 100).await;
    assert_eq!(h.manager.purge_expired().await.unwrap(), 0);
    h.advance(10.0);
    assert_eq!(h.manager.purge_expired().await.unwrap(), 3);
    assert_eq!(h.stats().await[0].sessions, 1);
    assert!(h.manager.validate(&web, &live).await.unwrap().is_some());
    assert_eq!(h.manager.purge_expired().await.unwrap(), 0);
}

pub async fn nothing_crosses_apps(h: &Harness) {
    let (web, admin) = (app("web"), app("admin"));
    let ada = h.user(&web, "ada@example.com").await;
    let (token, session) = h.session(&web, &ada, 3600).await;

    assert!(h.manager.validate(&admin, &token).await.unwrap().is_none());
    not_found(h.manager.get(&admin, ada.id).await, "user");
    assert_eq!(
        h.manager
            .find_by_email(&admin, "ada@example.com")
            .await
            .unwrap(),
        None
    );
    not_found(h.manager.list_sessions(&admin, ada.id).await, "user");
    not_found(h.manager.revoke_all(&admin, ada.id).await, "user");
    not_found(
        h.manager
            .create_session(&admin, ada.id, metadata(), ttl(60))
            .await,
        "user",
    );
    not_found(h.manager.touch(&admin, &token).await, "session");
    not_found(h.manager.rotate(&admin, &token).await, "session");
    not_found(h.manager.revoke(&admin, &session.id).await, "session");
    not_found(h.manager.revoke_by_token(&admin, &token).await, "session");
    not_found(
        h.manager
            .update_data(&admin, &session.id, SessionData::default(), 1)
            .await,
        "session",
    );
    not_found(h.manager.delete(&admin, ada.id).await, "user");
    assert!(
        h.manager
            .list(&admin, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    assert_eq!(
        h.manager.validate(&web, &token).await.unwrap(),
        Some(session),
        "untouched in web"
    );
}

pub async fn reset_of_one_app_leaves_other_apps_untouched(h: &Harness) {
    let (web, admin) = (app("web"), app("admin"));
    for i in 0..3 {
        let user = h.user(&web, &format!("w{i}@example.com")).await;
        h.session(&web, &user, 60).await;
    }
    let boss = h.user(&admin, "boss@example.com").await;
    let (admin_token, _) = h.session(&admin, &boss, 60).await;

    let mut progress = Vec::new();
    let deleted = h
        .manager
        .reset_app(&web, |n| progress.push(n))
        .await
        .unwrap();
    assert_eq!(deleted, 6);
    assert_eq!(progress.last(), Some(&6));

    let stats = h.stats().await;
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].app.as_str(), stats[0].users, stats[0].sessions),
        ("admin", 1, 1)
    );
    assert!(
        h.manager
            .validate(&admin, &admin_token)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        h.manager
            .list(&web, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(h.manager.reset_app(&web, |_| {}).await.unwrap(), 0);
}

pub async fn every_component_of_the_store_reports_healthy(h: &Harness) {
    let health = h.manager.store().health().await;
    assert!(!health.is_empty());
    for component in &health {
        assert!(component.ok, "{component:?}");
    }
    let durable = health.iter().filter(|c| !c.optional).count();
    assert_eq!(durable, 1, "exactly one durable component: {health:?}");
}
