//! The HTTP API in-process (`Router` + `oneshot`, no socket): every route, every error code, and bad
//! input on every field.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use session_management::{MemoryStore, SqliteStore, Store, UserManager};
use sessionctl::server::{ApiKey, AppState, app, ops};
use tower::ServiceExt as _;

const KEY: &str = "test-api-key";

struct Api {
    router: Router,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    fn new() -> Self {
        Self::over(Arc::new(MemoryStore::new()))
    }

    fn over(store: Arc<dyn Store>) -> Self {
        let manager = UserManager::new(store);
        let state = AppState::new(manager, Some(ApiKey::new(KEY)), Some(ops::prometheus()));
        Self { router: app(state) }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let raw = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send_raw(method, path, raw, key).await
    }

    async fn send_raw(&self, method: &str, path: &str, body: Vec<u8>, key: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, body, Some(KEY)).await
    }

    async fn user(&self, app: &str, email: &str) -> String {
        let reply = self
            .call(
                "POST",
                &format!("/v1/apps/{app}/users"),
                Some(json!({"email": email, "name": "Ada"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    async fn session(&self, app: &str, user: &str) -> (String, Value) {
        let reply = self
            .call(
                "POST",
                &format!("/v1/apps/{app}/users/{user}/sessions"),
                Some(json!({"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 api-test", "ttl_seconds": 3600})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        (
            reply.body["token"].as_str().unwrap().to_owned(),
            reply.body["session"].clone(),
        )
    }
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{:?}", reply.body);
    assert!(
        reply.body["error"]["message"].is_string(),
        "{:?}",
        reply.body
    );
}

fn assert_invalid(reply: &Reply, field: &str) {
    assert_error(reply, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(reply.body["error"]["field"], field, "{:?}", reply.body);
}

/// Every route of the contract, with a placeholder user and session id.
fn routes(user: &str, session_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("POST", "/v1/apps/web/users".into()),
        ("GET", "/v1/apps/web/users".into()),
        ("GET", format!("/v1/apps/web/users/{user}")),
        ("PATCH", format!("/v1/apps/web/users/{user}")),
        ("DELETE", format!("/v1/apps/web/users/{user}")),
        ("POST", format!("/v1/apps/web/users/{user}/sessions")),
        ("GET", format!("/v1/apps/web/users/{user}/sessions")),
        ("DELETE", format!("/v1/apps/web/users/{user}/sessions")),
        ("POST", "/v1/apps/web/sessions/validate".into()),
        ("POST", "/v1/apps/web/sessions/touch".into()),
        ("POST", "/v1/apps/web/sessions/rotate".into()),
        ("POST", "/v1/apps/web/sessions/revoke".into()),
        ("PATCH", format!("/v1/apps/web/sessions/{session_id}/data")),
        ("DELETE", format!("/v1/apps/web/sessions/{session_id}")),
    ]
}

#[tokio::test]
async fn every_route_needs_the_api_key() {
    let api = Api::new();
    let user = api.user("web", "ada@example.com").await;
    let (_, session) = api.session("web", &user).await;
    for (method, path) in routes(&user, session["id"].as_str().unwrap()) {
        for key in [None, Some("wrong-key"), Some("")] {
            let reply = api.send(method, &path, Some(json!({})), key).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                reply.headers[header::WWW_AUTHENTICATE],
                "Bearer",
                "{method} {path}"
            );
        }
    }
    // Nothing was changed by the rejected calls.
    let reply = api
        .call("GET", &format!("/v1/apps/web/users/{user}/sessions"), None)
        .await;
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn users_are_created_read_listed_updated_and_deleted() {
    let api = Api::new();
    let created = api
        .call(
            "POST",
            "/v1/apps/web/users",
            Some(json!({"email": " Ada@Example.com ", "name": "Ada"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    for field in ["id", "app", "email", "name", "created_at", "updated_at"] {
        assert!(created.body.get(field).is_some(), "user has {field}");
    }
    assert_eq!(created.body["email"], "ada@example.com");

    let got = api
        .call("GET", &format!("/v1/apps/web/users/{id}"), None)
        .await;
    assert_eq!((got.status, &got.body), (StatusCode::OK, &created.body));

    let bob = api.user("web", "bob@example.com").await;
    let page = api.call("GET", "/v1/apps/web/users?limit=1", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body["items"][0]["id"], id.as_str());
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = api
        .call(
            "GET",
            &format!("/v1/apps/web/users?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(next.body["items"][0]["id"], bob.as_str());
    assert!(next.body["next_cursor"].is_null());
    let by_email = api
        .call("GET", "/v1/apps/web/users?email=BOB%40example.com", None)
        .await;
    assert_eq!(by_email.body["items"][0]["id"], bob.as_str());
    let none = api
        .call("GET", "/v1/apps/web/users?email=nobody%40example.com", None)
        .await;
    assert_eq!(none.body["items"], json!([]));

    let patched = api
        .call(
            "PATCH",
            &format!("/v1/apps/web/users/{id}"),
            Some(json!({"name": "Countess"})),
        )
        .await;
    assert_eq!(
        (patched.status, &patched.body["name"]),
        (StatusCode::OK, &json!("Countess"))
    );
    let dup = api
        .call(
            "PATCH",
            &format!("/v1/apps/web/users/{id}"),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let dup = api
        .call(
            "POST",
            "/v1/apps/web/users",
            Some(json!({"email": "BOB@example.com", "name": "B"})),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    // The same email in another app is fine.
    api.user("admin", "bob@example.com").await;

    let (token, _) = api.session("web", &id).await;
    let deleted = api
        .call("DELETE", &format!("/v1/apps/web/users/{id}"), None)
        .await;
    assert_eq!(
        (deleted.status, &deleted.body),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    assert_error(
        &api.call("GET", &format!("/v1/apps/web/users/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.call("DELETE", &format!("/v1/apps/web/users/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let validate = api
        .call(
            "POST",
            "/v1/apps/web/sessions/validate",
            Some(json!({"token": token})),
        )
        .await;
    assert_error(&validate, StatusCode::UNAUTHORIZED, "invalid_session");
}

#[tokio::test]
async fn sessions_are_created_validated_touched_rotated_and_revoked() {
    let api = Api::new();
    let user = api.user("web", "ada@example.com").await;
    let created = api
        .call(
            "POST",
            &format!("/v1/apps/web/users/{user}/sessions"),
            Some(json!({"ip": "2001:db8::1", "user_agent": "UA", "ttl_seconds": 60, "data": {"cart": [1]}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let token = created.body["token"].as_str().unwrap().to_owned();
    let session = &created.body["session"];
    for field in [
        "id",
        "user_id",
        "app",
        "ip",
        "user_agent",
        "data",
        "created_at",
        "expires_at",
        "last_seen_at",
        "version",
    ] {
        assert!(session.get(field).is_some(), "session has {field}");
    }
    assert!(session.get("token").is_none());
    assert_eq!(
        (
            &session["ip"],
            &session["data"]["cart"][0],
            &session["user_id"]
        ),
        (&json!("2001:db8::1"), &json!(1), &json!(user))
    );

    let valid = api
        .call(
            "POST",
            "/v1/apps/web/sessions/validate",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!((valid.status, &valid.body), (StatusCode::OK, session));
    assert!(
        !valid.body.to_string().contains(&token),
        "no token outside create and rotate"
    );

    let touched = api
        .call(
            "POST",
            "/v1/apps/web/sessions/touch",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(touched.status, StatusCode::OK);
    assert_eq!(touched.body["id"], session["id"]);

    let rotated = api
        .call(
            "POST",
            "/v1/apps/web/sessions/rotate",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_token = rotated.body["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token);
    assert_ne!(rotated.body["session"]["id"], session["id"]);
    for path in ["validate", "touch", "rotate", "revoke"] {
        let reply = api
            .call(
                "POST",
                &format!("/v1/apps/web/sessions/{path}"),
                Some(json!({"token": token})),
            )
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_session");
    }

    let listed = api
        .call("GET", &format!("/v1/apps/web/users/{user}/sessions"), None)
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let revoked = api
        .call(
            "POST",
            "/v1/apps/web/sessions/revoke",
            Some(json!({"token": new_token})),
        )
        .await;
    assert_eq!(
        (revoked.status, &revoked.body),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    let after = api
        .call(
            "POST",
            "/v1/apps/web/sessions/validate",
            Some(json!({"token": new_token})),
        )
        .await;
    assert_error(&after, StatusCode::UNAUTHORIZED, "invalid_session");
}

#[tokio::test]
async fn data_updates_are_optimistic_and_sessions_revoke_by_id_and_all() {
    let api = Api::new();
    let user = api.user("web", "ada@example.com").await;
    let (token, session) = api.session("web", &user).await;
    let id = session["id"].as_str().unwrap();
    let path = format!("/v1/apps/web/sessions/{id}/data");
    let updated = api
        .call(
            "PATCH",
            &path,
            Some(json!({"data": {"step": 2}, "version": 1})),
        )
        .await;
    assert_eq!(
        (
            updated.status,
            &updated.body["version"],
            &updated.body["data"]
        ),
        (StatusCode::OK, &json!(2), &json!({"step": 2}))
    );
    let stale = api
        .call(
            "PATCH",
            &path,
            Some(json!({"data": {"step": 3}, "version": 1})),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "conflict");
    let valid = api
        .call(
            "POST",
            "/v1/apps/web/sessions/validate",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        valid.body["data"],
        json!({"step": 2}),
        "the stale write changed nothing"
    );

    let deleted = api
        .call("DELETE", &format!("/v1/apps/web/sessions/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_error(
        &api.call("DELETE", &format!("/v1/apps/web/sessions/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.call("PATCH", &path, Some(json!({"data": {}, "version": 2})))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    api.session("web", &user).await;
    api.session("web", &user).await;
    let all = api
        .call(
            "DELETE",
            &format!("/v1/apps/web/users/{user}/sessions"),
            None,
        )
        .await;
    assert_eq!(
        (all.status, &all.body),
        (StatusCode::OK, &json!({"revoked": 2}))
    );
    let listed = api
        .call("GET", &format!("/v1/apps/web/users/{user}/sessions"), None)
        .await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn nothing_crosses_apps() {
    let api = Api::new();
    let user = api.user("web", "ada@example.com").await;
    let (token, session) = api.session("web", &user).await;
    let id = session["id"].as_str().unwrap();
    for path in ["validate", "touch", "rotate", "revoke"] {
        let reply = api
            .call(
                "POST",
                &format!("/v1/apps/admin/sessions/{path}"),
                Some(json!({"token": token})),
            )
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_session");
    }
    for (method, path) in [
        ("GET", format!("/v1/apps/admin/users/{user}")),
        ("DELETE", format!("/v1/apps/admin/users/{user}")),
        ("GET", format!("/v1/apps/admin/users/{user}/sessions")),
        ("DELETE", format!("/v1/apps/admin/users/{user}/sessions")),
        ("DELETE", format!("/v1/apps/admin/sessions/{id}")),
    ] {
        assert_error(
            &api.call(method, &path, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let reply = api
        .call(
            "PATCH",
            &format!("/v1/apps/admin/sessions/{id}/data"),
            Some(json!({"data": {}, "version": 1})),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let reply = api
        .call(
            "POST",
            &format!("/v1/apps/admin/users/{user}/sessions"),
            Some(json!({"ip": "::1", "user_agent": "x", "ttl_seconds": 5})),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let valid = api
        .call(
            "POST",
            "/v1/apps/web/sessions/validate",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(valid.status, StatusCode::OK, "still valid in web");
}

#[tokio::test]
async fn bad_input_on_every_field_is_a_400_naming_it_and_never_a_500() {
    let api = Api::new();
    let user = api.user("web", "ada@example.com").await;
    let (token, session) = api.session("web", &user).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let sessions = format!("/v1/apps/web/users/{user}/sessions");
    let create =
        |ip: Value, ua: Value, ttl: Value| json!({"ip": ip, "user_agent": ua, "ttl_seconds": ttl});
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/v1/apps/Web/users".into(),
            Some(json!({"email": "a@example.com", "name": "A"})),
            "app",
        ),
        ("GET", "/v1/apps/-x/users".into(), None, "app"),
        (
            "GET",
            format!("/v1/apps/{}/users", "a".repeat(33)),
            None,
            "app",
        ),
        (
            "POST",
            "/v1/apps/web/users".into(),
            Some(json!({"email": "nope", "name": "A"})),
            "email",
        ),
        (
            "POST",
            "/v1/apps/web/users".into(),
            Some(json!({"email": "b@example.com", "name": ""})),
            "name",
        ),
        (
            "POST",
            "/v1/apps/web/users".into(),
            Some(json!({"email": "b@example.com", "name": "x".repeat(201)})),
            "name",
        ),
        (
            "POST",
            "/v1/apps/web/users".into(),
            Some(json!({"email": 5, "name": "A"})),
            "email",
        ),
        (
            "POST",
            "/v1/apps/web/users".into(),
            Some(json!({"name": "A"})),
            "email",
        ),
        (
            "PATCH",
            format!("/v1/apps/web/users/{user}"),
            Some(json!({"email": "@"})),
            "email",
        ),
        (
            "PATCH",
            format!("/v1/apps/web/users/{user}"),
            Some(json!({"name": "  "})),
            "name",
        ),
        (
            "GET",
            "/v1/apps/web/users/not-a-uuid".into(),
            None,
            "user_id",
        ),
        ("DELETE", "/v1/apps/web/users/123".into(), None, "user_id"),
        ("GET", "/v1/apps/web/users?limit=0".into(), None, "limit"),
        ("GET", "/v1/apps/web/users?limit=1001".into(), None, "limit"),
        (
            "GET",
            "/v1/apps/web/users?cursor=zzz".into(),
            None,
            "cursor",
        ),
        ("GET", "/v1/apps/web/users?email=nope".into(), None, "email"),
        (
            "POST",
            sessions.clone(),
            Some(create(json!("999.0.0.1"), json!("x"), json!(60))),
            "ip",
        ),
        (
            "POST",
            sessions.clone(),
            Some(create(json!("::1"), json!("x".repeat(513)), json!(60))),
            "user_agent",
        ),
        (
            "POST",
            sessions.clone(),
            Some(create(json!("::1"), json!("x"), json!(0))),
            "ttl",
        ),
        (
            "POST",
            sessions.clone(),
            Some(create(json!("::1"), json!("x"), json!(34_560_001))),
            "ttl",
        ),
        (
            "POST",
            sessions.clone(),
            Some(create(json!("::1"), json!("x"), json!(-5))),
            "ttl_seconds",
        ),
        (
            "POST",
            sessions.clone(),
            Some(create(json!("::1"), json!("x"), json!("soon"))),
            "ttl_seconds",
        ),
        (
            "POST",
            sessions.clone(),
            Some(json!({"ip": "::1", "user_agent": "x", "ttl_seconds": 5, "data": [1]})),
            "data",
        ),
        (
            "POST",
            sessions.clone(),
            Some(
                json!({"ip": "::1", "user_agent": "x", "ttl_seconds": 5, "data": {"k": "x".repeat(9000)}}),
            ),
            "data",
        ),
        (
            "POST",
            "/v1/apps/web/sessions/validate".into(),
            Some(json!({"token": "short"})),
            "token",
        ),
        (
            "POST",
            "/v1/apps/web/sessions/touch".into(),
            Some(json!({"token": 42})),
            "token",
        ),
        (
            "POST",
            "/v1/apps/web/sessions/rotate".into(),
            Some(json!({})),
            "token",
        ),
        (
            "POST",
            "/v1/apps/web/sessions/revoke".into(),
            Some(json!({"token": format!("{token}x")})),
            "token",
        ),
        (
            "DELETE",
            "/v1/apps/web/sessions/xyz".into(),
            None,
            "session_id",
        ),
        (
            "PATCH",
            "/v1/apps/web/sessions/xyz/data".into(),
            Some(json!({"data": {}, "version": 1})),
            "session_id",
        ),
        (
            "PATCH",
            format!("/v1/apps/web/sessions/{id}/data"),
            Some(json!({"data": "text", "version": 1})),
            "data",
        ),
        (
            "PATCH",
            format!("/v1/apps/web/sessions/{id}/data"),
            Some(json!({"data": {}, "version": -1})),
            "version",
        ),
    ];
    for (method, path, body, field) in cases {
        let reply = api.call(method, &path, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body:?}: {:?}",
            reply.body
        );
        assert_invalid(&reply, field);
    }
    // A JSON array is not an object, even when its items would fill the fields in order.
    for (method, path, body) in [
        (
            "POST",
            "/v1/apps/web/users".to_owned(),
            json!(["z@example.com", "Z"]),
        ),
        (
            "PATCH",
            format!("/v1/apps/web/users/{user}"),
            json!(["x@example.com", "X"]),
        ),
        (
            "PATCH",
            format!("/v1/apps/web/users/{user}"),
            json!([null, null]),
        ),
    ] {
        let reply = api.call(method, &path, Some(body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            reply.body["error"].get("field").is_none(),
            "{:?}",
            reply.body
        );
    }
    // Malformed JSON, and a body over the limit.
    let reply = api
        .send_raw(
            "POST",
            "/v1/apps/web/users",
            b"{not json".to_vec(),
            Some(KEY),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        reply.body["error"].get("field").is_none(),
        "{:?}",
        reply.body
    );
    let huge = format!(
        "{{\"email\": \"a@example.com\", \"name\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let reply = api
        .send_raw("POST", "/v1/apps/web/users", huge.into_bytes(), Some(KEY))
        .await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Nothing above changed anything.
    let users = api.call("GET", "/v1/apps/web/users", None).await;
    assert_eq!(users.body["items"].as_array().unwrap().len(), 1);
    let valid = api
        .call(
            "POST",
            "/v1/apps/web/sessions/validate",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        (valid.status, &valid.body["version"]),
        (StatusCode::OK, &json!(1))
    );
}

#[tokio::test]
async fn a_store_that_is_down_is_a_503_with_a_generic_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    let api = Api::over(Arc::new(store));
    pool.close().await;
    let reply = api
        .call(
            "POST",
            "/v1/apps/web/users",
            Some(json!({"email": "a@example.com", "name": "A"})),
        )
        .await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        !reply.body.to_string().contains("closed"),
        "no internals in the body: {:?}",
        reply.body
    );
    let ready = api.send("GET", "/readyz", None, None).await;
    assert_eq!(
        (ready.status, &ready.body["status"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("not_ready"))
    );
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_and_ops_endpoints_answer() {
    let api = Api::new();
    let spec = api.send("GET", "/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in spec.body["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = routes("{user_id}", "{session_id}")
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.replace("/web/", "/{app}/")))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    assert!(spec.body["components"]["securitySchemes"]["api_key"].is_object());

    let docs = api.send("GET", "/docs/", None, None).await;
    assert_eq!(
        docs.status,
        StatusCode::OK,
        "Swagger UI is served from vendored assets"
    );
    assert_eq!(
        api.send("GET", "/healthz", None, None).await.body,
        json!({"status": "ok"})
    );
    let ready = api.send("GET", "/readyz", None, None).await;
    assert_eq!(
        (ready.status, &ready.body["status"]),
        (StatusCode::OK, &json!("ready"))
    );
    let reply = api.send("GET", "/v1/nowhere", None, Some(KEY)).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    assert!(
        reply.headers.contains_key("x-request-id"),
        "every response carries a request id"
    );
    let metrics = api.send("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("sm_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
}
