//! The Redis cache honours the URL on every connection it makes: the ACL user and password and the
//! database number apply to the lookups (which have connections of their own) as to every other
//! command. Runs on the test Redis (`SM_TEST_REDIS_URL`) with an ACL user and a key prefix of its
//! own, both removed when the test ends, even after a panic.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/redis_prefix.rs"]
mod redis_prefix;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use session_management::{
    App, CreateUserData, Error, MemoryStore, RedisSessionCache, Session, SessionMetadata, Ttl,
    UserManager,
};
use time::OffsetDateTime;

/// Not database 0, where everything else runs.
const DB: i64 = 5;

/// An ACL user allowed the keys under `prefix` only; deleted, with those keys in [`DB`], on drop.
struct AclUser {
    name: String,
    password: String,
    prefix: String,
    admin_url: String,
}

impl AclUser {
    fn create() -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let user = Self {
            name: format!("smtest-{id}"),
            password: format!("pw-{}", uuid::Uuid::now_v7().simple()),
            prefix: format!("smtest:{id}:"),
            admin_url: redis_prefix::redis_url(),
        };
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user.name)
            .arg("on")
            .arg(format!(">{}", user.password))
            .arg(format!("~{}*", user.prefix))
            .arg("+@all")
            .query(&mut user.admin())
            .expect("ACL SETUSER (Redis 6 or later)");
        user
    }

    fn admin(&self) -> redis::Connection {
        redis::Client::open(self.admin_url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The test Redis's URL with this user, `password` and database [`DB`].
    fn url(&self, password: &str) -> String {
        let (host, port) = test_redis_address();
        format!("redis://{}:{password}@{host}:{port}/{DB}", self.name)
    }

    /// Keys under the prefix in database `db`.
    fn keys_in(&self, db: i64) -> Vec<Vec<u8>> {
        let mut conn = self.admin();
        let _: () = redis::cmd("SELECT").arg(db).query(&mut conn).unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap()
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        let mut conn = self.admin();
        let _: redis::RedisResult<()> = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query(&mut conn);
        let keys = self.keys_in(DB);
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("SELECT")
                .arg(DB)
                .query(&mut conn)
                .and_then(|()| redis::cmd("UNLINK").arg(&keys).query(&mut conn));
        }
    }
}

#[tokio::test]
async fn lookups_use_the_urls_user_password_and_database() {
    let user = AclUser::create();
    let cache = RedisSessionCache::connect(
        &user.url(&user.password),
        &user.prefix,
        Duration::from_secs(2),
    )
    .await
    .expect("connect with the ACL user");

    let app = App::parse("web").unwrap();
    let session = new_session(&app, "acl@example.com").await;
    let now = OffsetDateTime::now_utc();

    assert!(
        cache.put(&session, now).await.unwrap(),
        "the write was refused"
    );
    let found = cache.get(&app, &session.id, now).await.unwrap();
    assert_eq!(found, Some(session.clone()), "the lookup did not find it");
    assert_eq!(user.keys_in(DB).len(), 1, "the session is in database {DB}");
    assert!(user.keys_in(0).is_empty(), "nothing went to database 0");

    // Many lookups at once (batched, on the lookup connections) all answer.
    let cache = Arc::new(cache);
    let lookups: Vec<_> = (0..50)
        .map(|_| {
            let (cache, app, id) = (cache.clone(), app.clone(), session.id);
            tokio::spawn(async move { cache.get(&app, &id, now).await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap(), Some(session.clone()));
    }
    // As the ACL user, on database 5: the multiplexed connection and at least one lookup
    // connection (a lookup connection without `AUTH` would be the default user's).
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut user.admin())
        .unwrap();
    let ours = clients
        .lines()
        .filter(|line| line.contains(&format!(" user={} ", user.name)))
        .collect::<Vec<_>>();
    assert!(ours.len() >= 2, "connections as the ACL user: {ours:?}");
    assert!(
        ours.iter().all(|line| line.contains(&format!(" db={DB} "))),
        "{ours:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_echoing_it() {
    let user = AclUser::create();
    let wrong = "not-the-password-1234";
    let err = RedisSessionCache::connect(&user.url(wrong), &user.prefix, Duration::from_secs(2))
        .await
        .expect_err("connected with a wrong password");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let chain = format!("{err} {err:?} {}", error_chain(&err));
    assert!(!chain.contains(wrong), "the password leaked: {chain}");
}

/// Host and port of the test Redis (`SM_TEST_REDIS_URL`), which must be a TCP address.
fn test_redis_address() -> (String, u16) {
    let client = redis::Client::open(redis_prefix::redis_url()).unwrap();
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        _ => panic!("this test needs a TCP address for the test Redis"),
    }
}

/// A session of a new user (made in memory; the tests put it in Redis themselves).
async fn new_session(app: &App, email: &str) -> Session {
    let manager = UserManager::new(Arc::new(MemoryStore::new()));
    let owner = manager
        .create(
            app,
            CreateUserData {
                email: email.into(),
                name: "Redis connection test".into(),
            },
        )
        .await
        .unwrap();
    let (_, session) = manager
        .create_session(
            app,
            owner.id,
            SessionMetadata::parse("192.0.2.1", "Mozilla/5.0 (connection test)").unwrap(),
            Ttl::from_secs(3600).unwrap(),
        )
        .await
        .unwrap();
    session
}

/// A cache reaching Redis through a fault proxy, with two sessions of different users cached.
struct Proxied {
    _prefix: redis_prefix::TestPrefix,
    proxy: fault_proxy::FaultProxy,
    cache: Arc<RedisSessionCache>,
    timeout: Duration,
    app: App,
    first: Session,
    second: Session,
    now: OffsetDateTime,
}

impl Proxied {
    async fn start() -> Self {
        let prefix = redis_prefix::TestPrefix::new();
        let (host, port) = test_redis_address();
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = fault_proxy::FaultProxy::start(target).await.unwrap();
        let timeout = Duration::from_millis(100);
        let url = format!("redis://{}", proxy.addr());
        let cache = RedisSessionCache::connect(&url, prefix.as_str(), timeout)
            .await
            .unwrap();
        let app = App::parse("web").unwrap();
        let first = new_session(&app, "first@example.com").await;
        let second = new_session(&app, "second@example.com").await;
        let now = OffsetDateTime::now_utc();
        for session in [&first, &second] {
            assert!(cache.put(session, now).await.unwrap());
        }
        let proxied = Self {
            _prefix: prefix,
            proxy,
            cache: Arc::new(cache),
            timeout,
            app,
            first,
            second,
            now,
        };
        proxied.assert_found(&proxied.first).await;
        proxied.assert_found(&proxied.second).await;
        proxied
    }

    async fn get(&self, session: &Session) -> session_management::Result<Option<Session>> {
        self.cache.get(&self.app, &session.id, self.now).await
    }

    async fn assert_found(&self, session: &Session) {
        assert_eq!(self.get(session).await.unwrap().as_ref(), Some(session));
    }
}

#[tokio::test]
async fn a_lookup_that_timed_out_never_hands_its_late_reply_to_the_next() {
    let t = Proxied::start().await;

    // Replies now come back after the timeout: the lookup fails, its reply still on the way.
    t.proxy.delay(t.timeout * 3);
    let err = t.get(&t.first).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        err.source().unwrap().to_string().contains("did not answer"),
        "{err:?}"
    );

    // Back to normal (the delayed connection stays open): the next lookup must read its own reply,
    // not the late one meant for the lookup that gave up (another user's session).
    tokio::time::sleep(t.timeout * 4).await;
    t.proxy.restore();
    for _ in 0..5 {
        t.assert_found(&t.second).await;
    }
}

#[tokio::test]
async fn lookups_reconnect_when_their_idle_connections_were_closed() {
    let t = Proxied::start().await;
    // Several lookup connections open (concurrent lookups run as several batches).
    let lookups: Vec<_> = (0..30)
        .map(|_| {
            let (cache, app, id, now) = (t.cache.clone(), t.app.clone(), t.first.id, t.now);
            tokio::spawn(async move { cache.get(&app, &id, now).await })
        })
        .collect();
    for lookup in lookups {
        assert!(lookup.await.unwrap().unwrap().is_some());
    }
    // Every connection closed while idle, as by a Redis restart: the next lookups reconnect and
    // answer rather than fail (three failures in a row would open the tiered store's breaker).
    t.proxy.cut();
    t.proxy.restore();
    for _ in 0..5 {
        t.assert_found(&t.first).await;
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = err.source();
    while let Some(err) = source {
        out.push_str(&format!("{err}; "));
        source = err.source();
    }
    out
}
