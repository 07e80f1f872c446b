//! The studio in-process (`Router` + `oneshot`, no socket): login and its cookie, every page, every
//! action with its CSRF and origin checks, error pages and HTML escaping.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use session_management::{
    App, CreateUserData, MemoryStore, Session, SessionMetadata, SessionToken, Ttl, User,
    UserManager,
};
use sessionctl::server::{ApiKey, AppState, app};
use tower::ServiceExt as _;

const KEY: &str = "test-key";
const HOST: &str = "studio.test";

struct Studio {
    router: Router,
    manager: UserManager,
    web: App,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |value| value.to_str().unwrap())
    }

    fn set_cookie(&self) -> Option<&str> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|value| value.to_str().unwrap())
    }

    /// The first CSRF token in the page.
    fn csrf(&self) -> String {
        let start = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a CSRF field")
            + 19;
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }
}

impl Studio {
    fn new() -> Self {
        Self::with_key(Some(ApiKey::new(KEY)))
    }

    fn with_key(key: Option<ApiKey>) -> Self {
        let manager = UserManager::new(Arc::new(MemoryStore::new()));
        let router = app(AppState::new(manager.clone(), key, None));
        let web = App::parse("web").unwrap();
        Self {
            router,
            manager,
            web,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut request = Request::get(path).header(header::HOST, HOST);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post_from(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &str,
        origin: Option<&str>,
    ) -> Reply {
        let mut request = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    /// A POST as the studio's own pages send it (same origin).
    async fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Reply {
        let origin = format!("http://{HOST}");
        self.post_from(path, cookie, form, Some(&origin)).await
    }

    /// Logs in; returns the `Cookie` header value.
    async fn login(&self) -> String {
        let reply = self
            .post("/studio/login", None, &format!("api_key={KEY}"))
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        let set_cookie = reply.set_cookie().expect("a login cookie");
        set_cookie.split(';').next().unwrap().to_owned()
    }

    async fn user(&self, email: &str, name: &str) -> User {
        let data = CreateUserData {
            email: email.into(),
            name: name.into(),
        };
        self.manager.create(&self.web, data).await.unwrap()
    }

    async fn session(&self, user: &User) -> (SessionToken, Session) {
        let metadata = SessionMetadata::parse("203.0.113.7", "Mozilla/5.0 (Test)").unwrap();
        let ttl = Ttl::from_secs(3600).unwrap();
        self.manager
            .create_session(&self.web, user.id, metadata, ttl)
            .await
            .unwrap()
    }

    async fn validates(&self, token: &SessionToken) -> bool {
        self.manager
            .validate(&self.web, token)
            .await
            .unwrap()
            .is_some()
    }

    fn user_page(&self, user: &User) -> String {
        format!("/studio/apps/web/users/{}", user.id)
    }
}

fn revoke_path(session: &Session) -> String {
    format!("/studio/apps/web/sessions/{}/revoke", session.id)
}

#[tokio::test]
async fn every_page_and_action_sends_a_visitor_without_a_login_to_the_login_page() {
    let studio = Studio::new();
    let user = studio.user("ada@example.com", "Ada").await;
    let (token, session) = studio.session(&user).await;
    for path in [
        "/studio".to_owned(),
        "/studio/apps/web".to_owned(),
        "/studio/open?app=web".to_owned(),
        studio.user_page(&user),
    ] {
        let reply = studio.get(&path, None).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(reply.location(), "/studio/login", "{path}");
    }
    for path in [
        revoke_path(&session),
        format!("{}/revoke-all", studio.user_page(&user)),
        format!("{}/delete", studio.user_page(&user)),
        "/studio/logout".to_owned(),
    ] {
        let reply = studio.post(&path, None, "csrf=x").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(reply.location(), "/studio/login", "{path}");
    }
    assert!(studio.validates(&token).await);
}

#[tokio::test]
async fn the_login_page_has_the_form_and_strict_headers() {
    let studio = Studio::new();
    let reply = studio.get("/studio/login", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .body
            .contains(r#"<form method="post" action="/studio/login">"#)
    );
    assert!(
        reply
            .body
            .contains(r#"<input type="password" name="api_key" id="api-key""#)
    );
    assert!(reply.body.contains(r#"<button type="submit" id="login">"#));
    assert!(!reply.body.contains("any value logs in"));
    assert!(!reply.body.contains("<script"));
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
    let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("script-src"));
}

#[tokio::test]
async fn a_wrong_key_is_401_with_the_form_and_no_cookie() {
    let studio = Studio::new();
    for form in ["api_key=wrong", "api_key=", ""] {
        let reply = studio.post("/studio/login", None, form).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{form}");
        assert!(reply.set_cookie().is_none(), "{form}");
        assert!(reply.body.contains("Wrong API key"), "{form}");
        assert!(reply.body.contains(r#"id="api-key""#), "{form}");
    }
}

#[tokio::test]
async fn the_right_key_sets_a_signed_http_only_strict_cookie_that_is_not_the_key() {
    let studio = Studio::new();
    let reply = studio
        .post("/studio/login", None, &format!("api_key={KEY}"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/studio");
    let cookie = reply.set_cookie().unwrap();
    assert!(cookie.starts_with("sm_studio="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict"));
    assert!(cookie.contains("Path=/studio"));
    assert!(!cookie.contains(KEY));
    let value = cookie.split(';').next().unwrap();
    assert_eq!(
        studio.get("/studio", Some(value)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_an_api_key_any_value_logs_in_and_the_page_says_so() {
    let studio = Studio::with_key(None);
    let page = studio.get("/studio/login", None).await;
    assert!(page.body.contains("any value logs in"));
    let reply = studio.post("/studio/login", None, "api_key=anything").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(reply.set_cookie().is_some());
}

#[tokio::test]
async fn a_tampered_or_forged_cookie_is_refused() {
    let studio = Studio::new();
    let cookie = studio.login().await;
    let (payload, mac) = cookie.rsplit_once('.').unwrap();
    let flipped = if mac.ends_with('0') { "1" } else { "0" };
    let forged_mac = format!("{payload}.{}{flipped}", &mac[..mac.len() - 1]);
    let value = cookie.trim_start_matches("sm_studio=");
    let (expiry, rest) = value.split_once('.').unwrap();
    let later = format!("sm_studio={}.{rest}", expiry.parse::<u64>().unwrap() + 3600);
    for forged in [
        forged_mac,
        later,
        format!("sm_studio={KEY}"),
        "sm_studio=".to_owned(),
    ] {
        let reply = studio.get("/studio", Some(&forged)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{forged}");
        assert_eq!(reply.location(), "/studio/login", "{forged}");
    }
}

#[tokio::test]
async fn logging_out_ends_the_login_even_for_a_kept_copy_of_the_cookie() {
    let studio = Studio::new();
    let cookie = studio.login().await;
    let csrf = studio.get("/studio", Some(&cookie)).await.csrf();
    let reply = studio
        .post("/studio/logout", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/studio/login");
    assert!(reply.set_cookie().unwrap().contains("Max-Age=0"));
    let again = studio.get("/studio", Some(&cookie)).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_apps_page_lists_each_app_with_its_counts() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    studio.user("bob@example.com", "Bob").await;
    studio.session(&ada).await;
    let admin = App::parse("admin").unwrap();
    let data = CreateUserData {
        email: "root@example.com".into(),
        name: "Root".into(),
    };
    studio.manager.create(&admin, data).await.unwrap();
    let cookie = studio.login().await;
    let reply = studio.get("/studio", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains(r#"<table id="apps">"#));
    assert!(
        reply
            .body
            .contains(r#"<a class="app-link" href="/studio/apps/web">web</a>"#)
    );
    assert!(
        reply
            .body
            .contains(r#"<a class="app-link" href="/studio/apps/admin">admin</a>"#)
    );
    let web_row = &reply.body[reply.body.find(">web</a>").unwrap()..];
    let web_row = &web_row[..web_row.find("</tr>").unwrap()];
    assert!(web_row.contains(r#"<td class="num">2</td>"#), "{web_row}");
    assert!(web_row.contains(r#"<td class="num">1</td>"#), "{web_row}");
    assert!(reply.body.contains(r#"<input name="app" id="open-app""#));
}

#[tokio::test]
async fn opening_an_app_by_name_goes_there_and_a_bad_slug_is_a_400_page() {
    let studio = Studio::new();
    let cookie = studio.login().await;
    let reply = studio.get("/studio/open?app=web", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/studio/apps/web");
    let bad = studio
        .get("/studio/open?app=Not%20An%20App", Some(&cookie))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("invalid app"), "{}", bad.body);
    assert!(
        bad.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn searching_by_email_finds_the_user_or_says_there_is_none() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada Lovelace").await;
    studio.user("bob@example.com", "Bob").await;
    let cookie = studio.login().await;
    let reply = studio
        .get("/studio/apps/web?email=ADA%40example.com", Some(&cookie))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .body
            .contains(r#"<form method="get" id="user-search""#)
    );
    let link = format!(
        r#"<a class="user-link" href="/studio/apps/web/users/{}">ada@example.com</a>"#,
        ada.id
    );
    assert!(reply.body.contains(&link), "{}", reply.body);
    assert!(reply.body.contains("Ada Lovelace"));
    assert!(!reply.body.contains("bob@example.com"));
    let none = studio
        .get("/studio/apps/web?email=eve%40example.com", Some(&cookie))
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(none.body.contains("No user with this email"));
    assert!(!none.body.contains("user-link"));
}

#[tokio::test]
async fn the_users_list_shows_a_hundred_users_and_links_the_next_page() {
    let studio = Studio::new();
    for i in 0..101 {
        studio.user(&format!("u{i:03}@example.com"), "U").await;
    }
    let cookie = studio.login().await;
    let first = studio.get("/studio/apps/web", Some(&cookie)).await;
    assert_eq!(first.body.matches(r#"class="user-link""#).count(), 100);
    let start = first.body.find(r#"id="next-page""#).expect("a next link");
    let href_start = first.body[..start].rfind("href=\"").unwrap() + 6;
    let href_len = first.body[href_start..].find('"').unwrap();
    let next = first.body[href_start..href_start + href_len].replace("&amp;", "&");
    let second = studio.get(&next, Some(&cookie)).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body.matches(r#"class="user-link""#).count(), 1);
    assert!(second.body.contains("u100@example.com"));
    assert!(!second.body.contains(r#"id="next-page""#));
}

#[tokio::test]
async fn the_user_page_lists_live_sessions_by_id_with_their_forms() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    let (_, one) = studio.session(&ada).await;
    let (_, two) = studio.session(&ada).await;
    let cookie = studio.login().await;
    let reply = studio.get(&studio.user_page(&ada), Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains(r#"<table id="sessions">"#));
    for session in [&one, &two] {
        assert!(
            reply
                .body
                .contains(&format!(r#"<tr data-session-id="{}">"#, session.id))
        );
        let action = format!(r#"action="{}""#, revoke_path(session));
        assert!(reply.body.contains(&action));
    }
    assert!(reply.body.contains("203.0.113.7"));
    assert!(reply.body.contains("Mozilla/5.0 (Test)"));
    assert!(reply.body.contains(&ada.id.to_string()));
    assert_eq!(reply.body.matches(r#"class="revoke""#).count(), 2);
    assert!(reply.body.contains(r#"id="revoke-all""#));
    assert!(reply.body.contains(r#"id="delete-user""#));
    // Times are RFC 3339 in UTC.
    let created = one.created_at.replace_nanosecond(0).unwrap();
    let shown = created
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        shown.ends_with('Z') && reply.body.contains(&shown),
        "{shown}"
    );
}

#[tokio::test]
async fn revoking_with_the_csrf_token_revokes_the_session() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    let (token, session) = studio.session(&ada).await;
    let (other_token, _) = studio.session(&ada).await;
    let cookie = studio.login().await;
    let csrf = studio
        .get(&studio.user_page(&ada), Some(&cookie))
        .await
        .csrf();
    let form = format!("csrf={csrf}&user_id={}", ada.id);
    let reply = studio
        .post(&revoke_path(&session), Some(&cookie), &form)
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(
        reply.location(),
        format!("{}?notice=revoked", studio.user_page(&ada))
    );
    assert!(!studio.validates(&token).await);
    assert!(studio.validates(&other_token).await);
    let page = studio.get(reply.location(), Some(&cookie)).await;
    assert!(page.body.contains(r#"id="notice""#));
    assert!(!page.body.contains(&session.id.to_string()));
    // Revoking it again: the session is gone.
    let again = studio
        .post(&revoke_path(&session), Some(&cookie), &form)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_action_without_or_with_a_wrong_csrf_token_is_403_and_does_nothing() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    let (token, session) = studio.session(&ada).await;
    let cookie = studio.login().await;
    let other_login = studio.login().await;
    let foreign = studio.get("/studio", Some(&other_login)).await.csrf();
    let wrong = format!("csrf={foreign}");
    for form in ["", "csrf=", "csrf=00ff", "user_id=x", wrong.as_str()] {
        for path in [
            revoke_path(&session),
            format!("{}/revoke-all", studio.user_page(&ada)),
            format!("{}/delete", studio.user_page(&ada)),
        ] {
            let reply = studio.post(&path, Some(&cookie), form).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} {form:?}");
            assert!(reply.body.contains("403"));
        }
    }
    assert!(studio.validates(&token).await);
    assert!(studio.manager.get(&studio.web, ada.id).await.is_ok());
}

#[tokio::test]
async fn a_cross_site_origin_is_403_even_with_the_right_csrf_token() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    let (token, session) = studio.session(&ada).await;
    let cookie = studio.login().await;
    let csrf = studio
        .get(&studio.user_page(&ada), Some(&cookie))
        .await
        .csrf();
    let form = format!("csrf={csrf}");
    for origin in [
        "https://evil.example",
        "null",
        "http://studio.test.evil.example",
    ] {
        let reply = studio
            .post_from(&revoke_path(&session), Some(&cookie), &form, Some(origin))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin}");
    }
    let login = studio
        .post_from(
            "/studio/login",
            None,
            &format!("api_key={KEY}"),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(login.set_cookie().is_none());
    assert!(studio.validates(&token).await);
    // No Origin at all (older clients) is let through on the CSRF token alone.
    let reply = studio
        .post_from(&revoke_path(&session), Some(&cookie), &form, None)
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(!studio.validates(&token).await);
}

#[tokio::test]
async fn revoke_all_revokes_every_session_of_the_user_only() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    let bob = studio.user("bob@example.com", "Bob").await;
    let (one, _) = studio.session(&ada).await;
    let (two, _) = studio.session(&ada).await;
    let (bobs, _) = studio.session(&bob).await;
    let cookie = studio.login().await;
    let csrf = studio
        .get(&studio.user_page(&ada), Some(&cookie))
        .await
        .csrf();
    let path = format!("{}/revoke-all", studio.user_page(&ada));
    let reply = studio
        .post(&path, Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.location(),
        format!("{}?notice=revoked-all", studio.user_page(&ada))
    );
    assert!(!studio.validates(&one).await);
    assert!(!studio.validates(&two).await);
    assert!(studio.validates(&bobs).await);
}

#[tokio::test]
async fn delete_removes_the_user_and_their_sessions() {
    let studio = Studio::new();
    let ada = studio.user("ada@example.com", "Ada").await;
    let (token, _) = studio.session(&ada).await;
    let cookie = studio.login().await;
    let csrf = studio
        .get(&studio.user_page(&ada), Some(&cookie))
        .await
        .csrf();
    let path = format!("{}/delete", studio.user_page(&ada));
    let reply = studio
        .post(&path, Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/studio/apps/web?notice=deleted");
    assert!(!studio.validates(&token).await);
    assert!(studio.manager.get(&studio.web, ada.id).await.is_err());
    let page = studio.get(reply.location(), Some(&cookie)).await;
    assert!(page.body.contains(r#"<p class="message" id="notice">"#));
    let gone = studio.get(&studio.user_page(&ada), Some(&cookie)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.body.contains("user not found"));
}

#[tokio::test]
async fn bad_input_is_a_400_page_naming_the_field() {
    let studio = Studio::new();
    let cookie = studio.login().await;
    let cases = [
        ("/studio/apps/Web", "invalid app"),
        ("/studio/apps/web/users/not-a-uuid", "invalid user_id"),
        ("/studio/apps/web?email=not-an-email", "invalid email"),
        ("/studio/apps/web?cursor=%00garbage", "invalid cursor"),
    ];
    for (path, message) in cases {
        let reply = studio.get(path, Some(&cookie)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.body
        );
        assert!(reply.body.contains(message), "{path}: {}", reply.body);
    }
    let csrf = studio.get("/studio", Some(&cookie)).await.csrf();
    let reply = studio
        .post(
            "/studio/apps/web/sessions/xyz/revoke",
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("invalid session_id"));
}

#[tokio::test]
async fn user_data_is_html_escaped_everywhere() {
    let studio = Studio::new();
    let user = studio
        .user("mallory@example.com", "<script>alert(1)</script>")
        .await;
    let cookie = studio.login().await;
    for path in [
        studio.user_page(&user),
        "/studio/apps/web".to_owned(),
        "/studio/apps/web?email=%22%3E%3Cscript%3E@example.com".to_owned(),
    ] {
        let reply = studio.get(&path, Some(&cookie)).await;
        assert!(!reply.body.contains("<script>"), "{path}");
        assert!(!reply.body.contains("\"><script"), "{path}");
    }
    let page = studio.get(&studio.user_page(&user), Some(&cookie)).await;
    let escaped = [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&#60;script&#62;alert(1)&#60;/script&#62;",
    ];
    assert!(
        escaped.iter().any(|name| page.body.contains(name)),
        "{}",
        page.body
    );
}
