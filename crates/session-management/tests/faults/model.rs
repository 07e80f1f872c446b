//! Model-based: random sequences of operations and Redis faults against the tiered store (over
//! SQLite), compared step by step with the in-memory store on the same manual clock.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use session_management::{
    Error, ManualClock, MemoryStore, Session, SessionData, SessionToken, Store, Ttl, UserId,
    UserManager,
};

use crate::deployment::{Deployment, metadata, web};

#[derive(Debug, Clone)]
enum Op {
    CreateUser,
    CreateSession { user: usize, ttl: u64 },
    Validate(usize),
    Touch(usize),
    Rotate(usize),
    Revoke(usize),
    RevokeAll(usize),
    DeleteUser(usize),
    UpdateData { session: usize, stale: bool },
    Advance(u64),
    CutRedis,
    BlackholeRedis,
    RestoreRedis,
    Maintain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::CreateUser),
        4 => (0..4usize, 1..200u64).prop_map(|(user, ttl)| Op::CreateSession { user, ttl }),
        8 => (0..12usize).prop_map(Op::Validate),
        2 => (0..12usize).prop_map(Op::Touch),
        2 => (0..12usize).prop_map(Op::Rotate),
        2 => (0..12usize).prop_map(Op::Revoke),
        1 => (0..4usize).prop_map(Op::RevokeAll),
        1 => (0..4usize).prop_map(Op::DeleteUser),
        2 => (0..12usize, any::<bool>()).prop_map(|(session, stale)| Op::UpdateData { session, stale }),
        2 => (1..120u64).prop_map(Op::Advance),
        2 => Just(Op::CutRedis),
        1 => Just(Op::BlackholeRedis),
        2 => Just(Op::RestoreRedis),
        2 => Just(Op::Maintain),
    ]
}

/// What must agree between the model and the system: everything but ids and tokens (random).
fn view(session: &Session) -> impl PartialEq + std::fmt::Debug {
    (
        session.created_at,
        session.expires_at,
        session.last_seen_at,
        session.version,
        session.data.to_json(),
        session.ttl,
        session.metadata.clone(),
    )
}

fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code(),
    }
}

struct Pair {
    model: UserManager,
    system: UserManager,
    users: Vec<(UserId, UserId)>,
    sessions: Vec<(SessionToken, SessionToken)>,
}

impl Pair {
    fn user(&self, i: usize) -> Option<(UserId, UserId)> {
        (!self.users.is_empty()).then(|| self.users[i % self.users.len()])
    }

    fn session(&self, i: usize) -> Option<(SessionToken, SessionToken)> {
        (!self.sessions.is_empty()).then(|| self.sessions[i % self.sessions.len()].clone())
    }
}

async fn run(ops: Vec<Op>) {
    let deployment = Deployment::sqlite().await;
    let clock = ManualClock::new();
    let instance = deployment.instance_with_clock(clock.clone()).await;
    let mut pair = Pair {
        model: UserManager::new(Arc::new(MemoryStore::new())).with_clock(Arc::new(clock.clone())),
        system: instance.manager.clone(),
        users: Vec::new(),
        sessions: Vec::new(),
    };
    let app = web();
    for (step, op) in ops.into_iter().enumerate() {
        let context = format!("step {step}: {op:?}");
        match op {
            Op::CreateUser => {
                let data = || session_management::CreateUserData {
                    email: format!("user{}@example.com", pair.users.len()),
                    name: "Model".into(),
                };
                let m = pair.model.create(&app, data()).await.unwrap();
                let s = pair.system.create(&app, data()).await.unwrap();
                pair.users.push((m.id, s.id));
            }
            Op::CreateSession { user, ttl } => {
                let Some((mu, su)) = pair.user(user) else {
                    continue;
                };
                let ttl = Ttl::from_secs(ttl).unwrap();
                let m = pair.model.create_session(&app, mu, metadata(), ttl).await;
                let s = pair.system.create_session(&app, su, metadata(), ttl).await;
                assert_eq!(outcome(&m), outcome(&s), "{context}");
                if let (Ok((mt, ms)), Ok((st, ss))) = (m, s) {
                    assert_eq!(view(&ms), view(&ss), "{context}");
                    pair.sessions.push((mt, st));
                }
            }
            Op::Validate(i) => {
                let Some((mt, st)) = pair.session(i) else {
                    continue;
                };
                let m = pair.model.validate(&app, &mt).await.unwrap();
                let s = pair.system.validate(&app, &st).await.unwrap();
                assert_eq!(m.as_ref().map(view), s.as_ref().map(view), "{context}");
            }
            Op::Touch(i) => {
                let Some((mt, st)) = pair.session(i) else {
                    continue;
                };
                let m = pair.model.touch(&app, &mt).await;
                let s = pair.system.touch(&app, &st).await;
                assert_eq!(
                    m.as_ref().ok().map(view),
                    s.as_ref().ok().map(view),
                    "{context}"
                );
                assert_eq!(outcome(&m), outcome(&s), "{context}");
            }
            Op::Rotate(i) => {
                let Some((mt, st)) = pair.session(i) else {
                    continue;
                };
                let m = pair.model.rotate(&app, &mt).await;
                let s = pair.system.rotate(&app, &st).await;
                assert_eq!(outcome(&m), outcome(&s), "{context}");
                if let (Ok((mt, ms)), Ok((st, ss))) = (m, s) {
                    assert_eq!(view(&ms), view(&ss), "{context}");
                    pair.sessions.push((mt, st));
                }
            }
            Op::Revoke(i) => {
                let Some((mt, st)) = pair.session(i) else {
                    continue;
                };
                let m = pair.model.revoke_by_token(&app, &mt).await;
                let s = pair.system.revoke_by_token(&app, &st).await;
                assert_eq!(outcome(&m), outcome(&s), "{context}");
            }
            Op::RevokeAll(u) => {
                let Some((mu, su)) = pair.user(u) else {
                    continue;
                };
                let m = pair.model.revoke_all(&app, mu).await;
                let s = pair.system.revoke_all(&app, su).await;
                assert_eq!(m.as_ref().ok(), s.as_ref().ok(), "{context}");
                assert_eq!(outcome(&m), outcome(&s), "{context}");
            }
            Op::DeleteUser(u) => {
                let Some((mu, su)) = pair.user(u) else {
                    continue;
                };
                let m = pair.model.delete(&app, mu).await;
                let s = pair.system.delete(&app, su).await;
                assert_eq!(outcome(&m), outcome(&s), "{context}");
            }
            Op::UpdateData { session, stale } => {
                let Some((mt, st)) = pair.session(session) else {
                    continue;
                };
                let Some(current) = pair.model.validate(&app, &mt).await.unwrap() else {
                    continue;
                };
                let version = if stale {
                    current.version - 1
                } else {
                    current.version
                };
                let data = SessionData::parse(serde_json::json!({ "step": step })).unwrap();
                let m = pair
                    .model
                    .update_data(&app, &mt.id(), data.clone(), version)
                    .await;
                let s = pair.system.update_data(&app, &st.id(), data, version).await;
                assert_eq!(outcome(&m), outcome(&s), "{context}");
            }
            Op::Advance(secs) => clock.advance(Duration::from_secs(secs)),
            Op::CutRedis => deployment.redis_proxy.cut(),
            Op::BlackholeRedis => deployment.redis_proxy.blackhole(),
            Op::RestoreRedis => deployment.redis_proxy.restore(),
            Op::Maintain => {
                let _ = instance.tiered.maintain().await;
            }
        }
    }
    // At the end, with Redis back and the outbox replayed, every session agrees once more.
    deployment.redis_proxy.restore();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let _ = instance.tiered.maintain().await;
    for (mt, st) in &pair.sessions {
        let m = pair.model.validate(&app, mt).await.unwrap();
        let s = pair.system.validate(&app, st).await.unwrap();
        assert_eq!(m.as_ref().map(view), s.as_ref().map(view), "final check");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn tiered_store_under_redis_faults_never_diverges_from_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops));
    }
}
