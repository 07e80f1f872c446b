//! Bad input for every field: `InvalidInput` naming the field (or `NotFound`), never a panic, and
//! nothing stored changes.

use serde_json::json;
use session_management::{
    App, CreateUserData, Error, Session, SessionData, SessionId, SessionMetadata, SessionToken,
    Ttl, UpdateUserData, User, UserId,
};

use crate::harness::{Harness, app, metadata, ttl};

/// Everything stored for the test's one user, to compare before and after a rejected call.
async fn snapshot(
    h: &Harness,
    app: &App,
    user: &User,
) -> (Vec<session_management::AppStats>, Vec<User>, Vec<Session>) {
    (
        h.stats().await,
        h.manager.list(app, None, 1000).await.unwrap().items,
        h.manager.list_sessions(app, user.id).await.unwrap(),
    )
}

fn assert_field<T: std::fmt::Debug>(result: Result<T, Error>, field: &str) {
    match result {
        Err(Error::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected invalid {field}, got {other:?}"),
    }
}

pub async fn invalid_user_input_is_rejected_and_changes_nothing(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    h.session(&web, &ada, 60).await;
    let before = snapshot(h, &web, &ada).await;

    let long_email = format!("{}@example.com", "a".repeat(250));
    for email in [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a b@example.com",
        long_email.as_str(),
        "ada@exa mple.com",
    ] {
        let create = CreateUserData {
            email: email.into(),
            name: "Ada".into(),
        };
        assert_field(h.manager.create(&web, create).await, "email");
        let update = UpdateUserData {
            email: Some(email.into()),
            name: None,
        };
        assert_field(h.manager.update(&web, ada.id, update).await, "email");
        assert_field(h.manager.find_by_email(&web, email).await, "email");
    }
    let long_name = "n".repeat(201);
    for name in ["", "  ", long_name.as_str(), "bad\u{7}name"] {
        let create = CreateUserData {
            email: "new@example.com".into(),
            name: name.into(),
        };
        assert_field(h.manager.create(&web, create).await, "name");
        let update = UpdateUserData {
            email: None,
            name: Some(name.into()),
        };
        assert_field(h.manager.update(&web, ada.id, update).await, "name");
    }
    // A valid email with an invalid name changes neither.
    let update = UpdateUserData {
        email: Some("changed@example.com".into()),
        name: Some(String::new()),
    };
    assert_field(h.manager.update(&web, ada.id, update).await, "name");

    for slug in [
        "",
        "Web",
        "1web",
        "-web",
        "web_app",
        "wéb",
        "web/admin",
        &"a".repeat(33),
    ] {
        assert_field(App::parse(slug), "app");
    }
    assert_field(h.manager.list(&web, None, 0).await, "limit");
    assert_field(h.manager.list(&web, None, 1001).await, "limit");
    assert_field(
        h.manager.list(&web, Some("not-a-cursor"), 10).await,
        "cursor",
    );
    assert_field(UserId::parse("42"), "user_id");

    assert_eq!(
        snapshot(h, &web, &ada).await,
        before,
        "rejected calls changed stored data"
    );
}

pub async fn invalid_session_input_is_rejected_and_changes_nothing(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (_, session) = h.session(&web, &ada, 60).await;
    let before = snapshot(h, &web, &ada).await;

    for ip in [
        "",
        "localhost",
        "256.0.0.1",
        "1.2.3",
        "::g",
        "1.2.3.4/24",
        "1.2.3.4:80",
    ] {
        assert_field(SessionMetadata::parse(ip, "ua"), "ip");
    }
    assert_field(
        SessionMetadata::parse("1.2.3.4", &"u".repeat(513)),
        "user_agent",
    );
    assert_field(
        SessionMetadata::parse("1.2.3.4", "line\nbreak"),
        "user_agent",
    );
    assert_field(Ttl::from_secs(0), "ttl");
    assert_field(Ttl::from_secs(Ttl::MAX_SECONDS + 1), "ttl");
    assert_field(Ttl::from_secs(u64::MAX), "ttl");
    assert_field(SessionData::parse(json!([1, 2])), "data");
    assert_field(SessionData::parse(json!("text")), "data");
    assert_field(SessionData::parse(json!(null)), "data");
    assert_field(
        SessionData::parse(json!({"blob": "x".repeat(8 * 1024)})),
        "data",
    );
    assert_field(SessionData::from_json("{not json"), "data");

    let capped = h.manager_with_max_lifetime(std::time::Duration::from_secs(30));
    assert_field(
        capped
            .create_session(&web, ada.id, metadata(), ttl(31))
            .await,
        "ttl",
    );

    // A valid version with a good session but an oversized payload never reaches the store: the type
    // cannot be built, so the update cannot even be called. The stored data is still the original.
    assert_eq!(
        h.manager.list_sessions(&web, ada.id).await.unwrap()[0].data,
        session.data
    );

    assert_eq!(
        snapshot(h, &web, &ada).await,
        before,
        "rejected calls changed stored data"
    );
}

pub async fn malformed_and_unknown_tokens_and_ids_are_rejected(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let (token, session) = h.session(&web, &ada, 60).await;
    let before = snapshot(h, &web, &ada).await;

    let too_long = format!("{}A", token.expose_secret());
    let with_pad = format!("{}=", &token.expose_secret()[..42]);
    for raw in [
        "",
        "abc",
        too_long.as_str(),
        with_pad.as_str(),
        "++++++++++++++++++++++++++++++++++++++++++/",
        "' OR 1=1 --",
    ] {
        assert_field(SessionToken::parse(raw), "token");
    }
    for raw in [
        "",
        "xyz",
        &"g".repeat(64),
        &"a".repeat(63),
        &session.id.to_string()[1..],
    ] {
        assert_field(SessionId::parse(raw), "session_id");
    }

    let unknown = SessionToken::generate().unwrap();
    assert_eq!(h.manager.validate(&web, &unknown).await.unwrap(), None);
    for result in [
        h.manager.touch(&web, &unknown).await.map(drop),
        h.manager.rotate(&web, &unknown).await.map(drop),
        h.manager.revoke_by_token(&web, &unknown).await,
        h.manager.revoke(&web, &unknown.id()).await,
        h.manager
            .update_data(&web, &unknown.id(), SessionData::default(), 1)
            .await
            .map(drop),
    ] {
        assert!(
            matches!(result, Err(Error::NotFound { what: "session" })),
            "{result:?}"
        );
    }
    assert!(h.manager.validate(&web, &token).await.unwrap().is_some());
    assert_eq!(
        snapshot(h, &web, &ada).await,
        before,
        "rejected calls changed stored data"
    );
}
