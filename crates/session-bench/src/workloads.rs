//! The workloads on our stores: untimed setup, the timed operations (each checks its result), and the
//! post-run checks that make a report valid.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use session_management::store::breaker::BreakerState;
use session_management::{
    App, BackgroundOptions, Clock, ManualClock, Session, SessionToken, UserId, UserManager,
};
use time::OffsetDateTime;

use crate::args::{Args, Backend, Workload};
use crate::common::report::Report;
use crate::common::runner;
use crate::common::shape::APP;
use crate::footprint;
use crate::ours::{self, Ours};
use crate::probe;
use crate::services::Services;

/// How far in the past `touch` sessions are created: past half their TTL, so every touch extends.
const TOUCH_AGE: Duration = Duration::from_secs(31 * 60);

/// What the timed operations work on, made before the clock starts.
struct Fixture {
    manager: UserManager,
    app: App,
    workload: Workload,
    users: Vec<UserId>,
    /// Sessions that are only ever read.
    reads: Vec<(SessionToken, Session)>,
    /// Sessions that are touched or revoked, one per operation.
    writes: Vec<(SessionToken, Session)>,
}

/// In `mixed`, operation `i` creates when `i % 20 == 0`, revokes when `i % 20 == 1`, else validates.
fn mixed_kind(i: u64) -> u64 {
    i % 20
}

/// Operations of `mixed` among `0..ops` that are creates and revokes.
fn mixed_counts(ops: u64) -> (u64, u64) {
    (ops.div_ceil(20), (ops + 18) / 20)
}

impl Fixture {
    async fn op(&self, i: u64) -> Result<(), String> {
        match self.workload {
            Workload::Create => self.create(i).await,
            Workload::Validate | Workload::ValidateFallback => self.validate(i).await,
            Workload::Touch => self.touch(i).await,
            Workload::Revoke => self.revoke(i as usize).await,
            Workload::Mixed => match mixed_kind(i) {
                0 => self.create(i / 20).await,
                1 => self.revoke((i / 20) as usize).await,
                _ => self.validate(i).await,
            },
        }
    }

    async fn create(&self, n: u64) -> Result<(), String> {
        let user = self.users[(n % self.users.len() as u64) as usize];
        self.manager
            .create_session(&self.app, user, ours::metadata(), ours::ttl())
            .await
            .map(drop)
            .map_err(|err| format!("create: {err}"))
    }

    async fn validate(&self, i: u64) -> Result<(), String> {
        let (token, session) = &self.reads[(i % self.reads.len() as u64) as usize];
        match self.manager.validate(&self.app, token).await {
            Ok(Some(found)) if found.id == session.id => Ok(()),
            Ok(Some(_)) => Err("validate returned another session".to_owned()),
            Ok(None) => Err("validate returned None for a live session".to_owned()),
            Err(err) => Err(format!("validate: {err}")),
        }
    }

    async fn touch(&self, i: u64) -> Result<(), String> {
        let (token, session) = &self.writes[i as usize];
        match self.manager.touch(&self.app, token).await {
            Ok(touched) if touched.expires_at > session.expires_at => Ok(()),
            Ok(_) => Err("touch did not extend the session".to_owned()),
            Err(err) => Err(format!("touch: {err}")),
        }
    }

    async fn revoke(&self, n: usize) -> Result<(), String> {
        let (_, session) = &self.writes[n];
        self.manager
            .revoke(&self.app, &session.id)
            .await
            .map_err(|err| format!("revoke: {err}"))
    }
}

/// Runs `args.workload` on `backend` (one of ours) and checks the outcome.
pub async fn run(backend: Backend, args: &Args, services: &Services) -> Result<Report> {
    let workload = args.workload;
    let fallback = workload == Workload::ValidateFallback;
    if fallback && backend != Backend::Tiered {
        bail!("validate-fallback needs --backend tiered");
    }
    let app = App::parse(APP)?;
    let setup_started = Instant::now();
    let clock = (workload == Workload::Touch)
        .then(|| ManualClock::starting_at(OffsetDateTime::now_utc() - TOUCH_AGE));
    let ours = Ours::open(
        backend,
        services,
        fallback,
        clock.clone().map(|c| Arc::new(c) as Arc<dyn Clock>),
    )
    .await?;
    let background = (args.background && ours.tiered.is_some())
        .then(|| ours.manager.start_background(BackgroundOptions::default()));

    let ops = args.ops;
    let (users, reads, writes) = match workload {
        Workload::Create => (args.users.min(ops), 0, 0),
        Workload::Validate | Workload::ValidateFallback => {
            (args.users.min(args.sessions), args.sessions, 0)
        }
        Workload::Touch | Workload::Revoke => (args.users.min(ops), 0, ops),
        Workload::Mixed => (args.users, args.sessions, mixed_counts(ops).1),
    };
    let users = Arc::new(ours::create_users(&ours.manager, &app, users.max(1), "fixture").await?);
    let reads = ours::create_sessions(&ours.manager, &app, &users, reads).await?;
    let writes = ours::create_sessions(&ours.manager, &app, &users, writes).await?;
    if let Some(clock) = &clock {
        clock.advance(TOUCH_AGE);
    }
    if fallback {
        ours.cut_redis(&app, &reads[0].0).await?;
    }
    let rows_before = ours::session_count(&ours.manager, &app).await?;
    let fixture = Arc::new(Fixture {
        manager: ours.manager.clone(),
        app: app.clone(),
        workload,
        users: users.to_vec(),
        reads,
        writes,
    });
    let setup_secs = setup_started.elapsed().as_secs_f64();

    let counters_before = probe::snapshot();
    let timed = fixture.clone();
    let outcome = runner::run(ops, args.concurrency, move |i| {
        let fixture = timed.clone();
        async move { fixture.op(i).await }
    })
    .await;
    let counters = probe::delta(&counters_before, &probe::snapshot());
    let mut report = Report::new(
        "ours",
        backend.name(),
        workload.name(),
        ops,
        args.concurrency,
        outcome,
    );
    report.setup_secs = setup_secs;
    report.counters = counters;
    if let Some(background) = background {
        background.shutdown().await;
    }
    check(&mut report, &ours, &fixture, rows_before).await?;
    if args.footprint > 0 {
        report.footprint =
            Some(footprint::ours(&ours, services, &app, args.footprint, &mut report.notes).await?);
    }
    Ok(report)
}

/// Post-run checks: writes really reached the durable store, reads were served by the tier the
/// workload claims.
async fn check(
    report: &mut Report,
    ours: &Ours,
    fixture: &Fixture,
    rows_before: u64,
) -> Result<()> {
    let ops = report.ops;
    let app = &fixture.app;
    let rows_after = ours::session_count(&ours.manager, app).await?;
    let expected_after = match fixture.workload {
        Workload::Create => rows_before + ops,
        Workload::Revoke => rows_before.saturating_sub(ops),
        Workload::Mixed => {
            let (creates, revokes) = mixed_counts(ops);
            rows_before + creates - revokes
        }
        _ => rows_before,
    };
    report.check(rows_after == expected_after, || {
        format!(
            "the durable store holds {rows_after} sessions, expected {expected_after} ({rows_before} before the run)"
        )
    });
    if fixture.workload == Workload::Revoke {
        let mut still_valid = 0;
        for (token, _) in fixture.writes.iter().take(100) {
            if ours.manager.validate(app, token).await?.is_some() {
                still_valid += 1;
            }
        }
        report.check(still_valid == 0, || {
            format!("{still_valid} of the first 100 revoked sessions still validate")
        });
    }
    let Some(tiered) = &ours.tiered else {
        return Ok(());
    };
    let counter = |name: &str| report.counters.get(name).copied().unwrap_or(0);
    let (hits, misses, fallbacks, errors) = (
        counter("sm_redis_hits_total"),
        counter("sm_redis_misses_total"),
        counter("sm_redis_fallbacks_total"),
        counter("sm_redis_errors_total"),
    );
    let reads = match fixture.workload {
        Workload::Validate | Workload::ValidateFallback => ops,
        Workload::Touch => ops,
        Workload::Mixed => ops - mixed_counts(ops).0 - mixed_counts(ops).1,
        _ => 0,
    };
    if reads > 0 {
        report.notes.push(format!(
            "Redis served {:.2}% of {reads} reads (hits {hits}, misses {misses}, fallbacks to PostgreSQL {fallbacks}, Redis errors {errors})",
            100.0 * hits as f64 / reads as f64
        ));
    }
    if fixture.workload == Workload::ValidateFallback {
        report.check(hits == 0, || {
            format!("Redis served {hits} validations: not a fallback measurement")
        });
        report.check(fallbacks >= ops, || {
            format!("only {fallbacks} of {ops} validations fell back to PostgreSQL")
        });
        let state = tiered.breaker_state();
        report.check(state != BreakerState::Closed, || {
            format!("the breaker closed during the run ({state:?})")
        });
    } else if errors > 0 || !tiered.redis_trusted() {
        report.notes.push(format!(
            "Redis failed {errors} calls during the run (timeouts under load?); reads fell back to PostgreSQL until the next maintain()"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_counts_match_the_kinds() {
        for ops in [0, 1, 2, 19, 20, 21, 22, 40, 41, 1000, 1001] {
            let creates = (0..ops).filter(|&i| mixed_kind(i) == 0).count() as u64;
            let revokes = (0..ops).filter(|&i| mixed_kind(i) == 1).count() as u64;
            assert_eq!(mixed_counts(ops), (creates, revokes), "ops = {ops}");
        }
    }
}
