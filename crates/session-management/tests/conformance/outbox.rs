//! The invalidation outbox: every session a durable store deletes is recorded, in order, in the same
//! transaction, until acknowledged.

use session_management::SessionData;
use session_management::store::Invalidation;

use crate::harness::{Harness, app};

pub async fn every_session_deletion_is_recorded_in_the_outbox_in_order(h: &Harness) {
    let (web, admin) = (app("web"), app("admin"));
    assert!(h.store.records_invalidations());
    let ada = h.user(&web, "ada@example.com").await;
    let (t1, s1) = h.session(&web, &ada, 100).await;
    let (t2, s2) = h.session(&web, &ada, 200).await;
    let (_, s3) = h.session(&web, &ada, 300).await;
    // Creating, touching and updating data record nothing.
    h.manager.touch(&web, &t1).await.unwrap();
    h.manager
        .update_data(&web, &s1.id, SessionData::default(), 1)
        .await
        .unwrap();
    assert!(h.store.pending_invalidations(100).await.unwrap().is_empty());

    h.manager.revoke(&web, &s1.id).await.unwrap();
    let (_, s2_new) = h.manager.rotate(&web, &t2).await.unwrap();
    h.manager.revoke_all(&web, ada.id).await.unwrap();
    let bob = h.user(&web, "bob@example.com").await;
    let (_, s4) = h.session(&web, &bob, 400).await;
    h.manager.delete(&web, bob.id).await.unwrap();
    let boss = h.user(&admin, "boss@example.com").await;
    h.session(&admin, &boss, 60).await;
    h.manager.reset_app(&admin, |_| {}).await.unwrap();
    drop(t1);

    let pending = h.store.pending_invalidations(100).await.unwrap();
    let seqs: Vec<i64> = pending.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let got: Vec<Invalidation> = pending.into_iter().map(|e| e.invalidation).collect();
    let revoke = |s: &session_management::Session| Invalidation::Revoke {
        app: web.clone(),
        id: s.id,
        until: s.expires_at,
    };
    let mut revoke_all = vec![revoke(&s2_new), revoke(&s3)];
    revoke_all.sort_by_key(|i| match i {
        Invalidation::Revoke { id, .. } => *id,
        _ => unreachable!(),
    });
    let mut expected = vec![revoke(&s1), revoke(&s2)];
    let (head, tail) = got.split_at(2);
    assert_eq!(head, expected.as_slice());
    let mut middle = tail[..2].to_vec();
    middle.sort_by_key(|i| match i {
        Invalidation::Revoke { id, .. } => *id,
        _ => unreachable!(),
    });
    assert_eq!(middle, revoke_all, "revoke_all records each session");
    let reset = Invalidation::ResetApp { app: admin.clone() };
    expected = vec![revoke(&s4), reset.clone(), reset];
    assert_eq!(
        &tail[2..],
        expected.as_slice(),
        "user delete, then reset (sessions, users)"
    );

    // Acknowledged entries leave; the rest stay in order.
    h.store.ack_invalidations(&seqs[..3]).await.unwrap();
    let rest = h.store.pending_invalidations(100).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        seqs[3..].to_vec()
    );
    assert_eq!(
        h.store.pending_invalidations(2).await.unwrap().len(),
        2,
        "limit is honoured"
    );

    let evict = Invalidation::Evict {
        app: web.clone(),
        id: s3.id,
    };
    h.store.enqueue_invalidation(&evict).await.unwrap();
    let last = h
        .store
        .pending_invalidations(100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.invalidation, evict);
    assert!(last.seq > *seqs.last().unwrap());
}
