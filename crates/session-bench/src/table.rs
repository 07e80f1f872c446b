//! `--table FILE`: the Markdown comparison `scripts/bench` prints and writes to `BENCHMARKS.md`, from
//! the JSON reports of every run (one per line). Runs of one (backend, workload) are numbered in file
//! order, so the k-th run of ours and the k-th run of the peer are from the same round.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::Value;

/// One row of the comparison: which runs it shows.
struct Row {
    group: &'static str,
    label: &'static str,
    backend: &'static str,
    workload: &'static str,
}

const fn row(
    group: &'static str,
    label: &'static str,
    backend: &'static str,
    workload: &'static str,
) -> Row {
    Row {
        group,
        label,
        backend,
        workload,
    }
}

/// The comparison rows; the first row of each group is ours, the others are divided into it.
const ROWS: &[Row] = &[
    row(
        "validate",
        "**ours**: `TieredStore`, warm Redis",
        "tiered",
        "validate",
    ),
    row(
        "validate",
        "limit: one raw `GET` (redis crate)",
        "raw-redis",
        "get",
    ),
    row(
        "validate",
        "peer: `RedisStore::load`",
        "tower-sessions-redis-store",
        "redis-load",
    ),
    row(
        "create",
        "**ours**: `TieredStore` (durable in PostgreSQL + Redis)",
        "tiered",
        "create",
    ),
    row(
        "create",
        "limit: raw single-row `INSERT`",
        "raw-pg-insert",
        "insert",
    ),
    row(
        "create",
        "limit: raw 64-row `INSERT` (ops = rows)",
        "raw-pg-insert-batch64",
        "insert-batch64",
    ),
    row(
        "create",
        "peer: `PostgresStore::create`",
        "tower-sessions-sqlx-store",
        "pg-create",
    ),
    row(
        "create",
        "peer: `RedisStore::create` (Redis only, not durable)",
        "tower-sessions-redis-store",
        "redis-create",
    ),
    row(
        "validate-fallback",
        "**ours**: `TieredStore`, Redis cut, breaker open",
        "tiered",
        "validate-fallback",
    ),
    row(
        "validate-fallback",
        "limit: raw `SELECT` by id",
        "raw-pg-select",
        "select",
    ),
    row(
        "validate-fallback",
        "peer: `PostgresStore::load`",
        "tower-sessions-sqlx-store",
        "pg-load",
    ),
];

/// The targets: (description, group, backend divided into ours, minimum ratio).
const TARGETS: &[(&str, &str, &str, f64)] = &[
    (
        "validate, warm Redis ≥ 1.5× peer `RedisStore::load`",
        "validate",
        "tower-sessions-redis-store",
        1.5,
    ),
    (
        "validate, warm Redis ≥ 0.9× the one-`GET` limit",
        "validate",
        "raw-redis",
        0.9,
    ),
    (
        "create (durable when it returns) ≥ 3× peer `PostgresStore::create`",
        "create",
        "tower-sessions-sqlx-store",
        3.0,
    ),
    (
        "validate-fallback (Redis cut) ≥ 1.0× peer `PostgresStore::load`",
        "validate-fallback",
        "tower-sessions-sqlx-store",
        1.0,
    ),
];

type Runs = BTreeMap<(String, String), Vec<Value>>;

fn text<'a>(run: &'a Value, field: &str) -> &'a str {
    run.get(field).and_then(Value::as_str).unwrap_or("")
}

fn number(run: &Value, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(run, |value, field| value.get(*field))
        .and_then(Value::as_f64)
}

fn valid(run: &Value) -> bool {
    run.get("valid").and_then(Value::as_bool) == Some(true)
}

/// The median (mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn median_of(runs: &[Value], path: &[&str]) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| valid(r))
            .filter_map(|r| number(r, path))
            .collect(),
    )
}

/// Ours ÷ theirs (ops/s) in each round where both runs are valid, pairing the k-th runs.
fn round_ratios(ours: &[Value], theirs: &[Value]) -> Vec<f64> {
    ours.iter()
        .zip(theirs)
        .filter(|(a, b)| valid(a) && valid(b))
        .filter_map(|(a, b)| Some(number(a, &["ops_per_sec"])? / number(b, &["ops_per_sec"])?))
        .collect()
}

/// Median over rounds of ours ÷ theirs (ops/s).
fn ratio(ours: &[Value], theirs: &[Value]) -> Option<f64> {
    median(round_ratios(ours, theirs))
}

fn show(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"))
}

fn runs_of<'a>(runs: &'a Runs, backend: &str, workload: &str) -> &'a [Value] {
    runs.get(&(backend.to_owned(), workload.to_owned()))
        .map_or(&[], Vec::as_slice)
}

fn group_ours<'a>(runs: &'a Runs, group: &str) -> &'a [Value] {
    ROWS.iter()
        .find(|r| r.group == group)
        .map_or(&[], |r| runs_of(runs, r.backend, r.workload))
}

/// Renders the comparison of the reports in `path`; `true` when every run was valid.
pub fn render_file(path: &Path) -> Result<(String, bool)> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(render(&content))
}

/// Renders the comparison of JSON reports, one per line; `true` when every run was valid.
pub fn render(content: &str) -> (String, bool) {
    let mut runs: Runs = BTreeMap::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let run: Value = serde_json::from_str(line).unwrap_or_else(
            |err| serde_json::json!({"valid": false, "error": format!("unreadable report: {err}")}),
        );
        let key = (
            text(&run, "backend").to_owned(),
            text(&run, "workload").to_owned(),
        );
        runs.entry(key).or_default().push(run);
    }
    let mut out = String::new();
    let all_valid = runs.values().flatten().all(valid);
    out.push_str("| workload | implementation | ops/s | p50 µs | p99 µs | max µs | peak RSS MiB | ours ÷ this (ops/s) | valid runs |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in ROWS {
        let these = runs_of(&runs, row.backend, row.workload);
        let ours = group_ours(&runs, row.group);
        let is_ours = ROWS
            .iter()
            .find(|r| r.group == row.group)
            .is_some_and(|first| std::ptr::eq(first, row));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            row.group,
            row.label,
            show(median_of(these, &["ops_per_sec"]), 0),
            show(median_of(these, &["p50_us"]), 0),
            show(median_of(these, &["p99_us"]), 0),
            show(median_of(these, &["max_us"]), 0),
            show(median_of(these, &["peak_rss_kib"]).map(|k| k / 1024.0), 1),
            if is_ours {
                "1.00".to_owned()
            } else {
                show(ratio(ours, these), 2)
            },
            these.iter().filter(|r| valid(r)).count(),
            these.len(),
        );
    }
    footprint(&mut out, &runs);
    let redis_ok = targets(&mut out, &runs);
    others(&mut out, &runs);
    problems(&mut out, &runs);
    (out, all_valid && redis_ok.is_some())
}

fn footprint(out: &mut String, runs: &Runs) {
    let ours = runs_of(runs, "tiered", "create");
    let peer_redis = runs_of(runs, "tower-sessions-redis-store", "redis-create");
    let peer_pg = runs_of(runs, "tower-sessions-sqlx-store", "pg-create");
    let f = |runs: &[Value], field: &str| median_of(runs, &["footprint", field]);
    let sessions = f(ours, "sessions").or(f(peer_redis, "sessions"));
    let _ = writeln!(
        out,
        "\nBytes per session (medians; dedicated pass of {} creates, one user each; Redis: `INFO memory` `used_memory` delta, and the sum of `MEMORY USAGE` over the keys written):\n",
        show(sessions, 0)
    );
    out.push_str("| implementation | Redis B/session (`used_memory` delta) | Redis B/session (`MEMORY USAGE` of its keys) | Redis keys/session | PostgreSQL B/session (`pg_total_relation_size` delta) |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: |\n");
    let _ = writeln!(
        out,
        "| **ours** (`TieredStore`: one key per session, no per-user index in Redis; `sessions` table) | {} | {} | {} | {} |",
        show(f(ours, "redis_bytes_per_session"), 0),
        show(f(ours, "redis_bytes_per_session_keys"), 0),
        show(f(ours, "redis_keys_per_session"), 2),
        show(f(ours, "pg_bytes_per_session"), 0),
    );
    let _ = writeln!(
        out,
        "| peer (`RedisStore`; `PostgresStore`'s `tower_sessions.session` table) | {} | {} | {} | {} |",
        show(f(peer_redis, "redis_bytes_per_session"), 0),
        show(f(peer_redis, "redis_bytes_per_session_keys"), 0),
        show(f(peer_redis, "redis_keys_per_session"), 2),
        show(f(peer_pg, "pg_bytes_per_session"), 0),
    );
    let split = ours
        .iter()
        .rev()
        .flat_map(|run| {
            run.get("notes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(Value::as_str)
        .find_map(|note| note.strip_prefix("Redis MEMORY USAGE per session by key type: "));
    if let Some(split) = split {
        let _ = writeln!(
            out,
            "
Ours by key type (`MEMORY USAGE`, last run): {split}."
        );
    }
}

/// Writes the targets table; `None` when some target could not be evaluated.
fn targets(out: &mut String, runs: &Runs) -> Option<()> {
    out.push_str("\nTargets (this 2-core machine, concurrency 64, ratios from the same run: median over rounds of ours ÷ theirs within each round):\n\n");
    out.push_str("| target | measured | per round | pass |\n| --- | ---: | ---: | :---: |\n");
    let mut complete = Some(());
    let verdict = |pass: Option<bool>| match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    };
    for (what, group, backend, min) in TARGETS {
        let theirs = ROWS
            .iter()
            .find(|r| r.group == *group && r.backend == *backend)
            .map_or(&[][..], |r| runs_of(runs, r.backend, r.workload));
        let rounds = round_ratios(group_ours(runs, group), theirs);
        let measured = median(rounds.clone());
        complete = complete.and(measured.map(drop));
        let rounds: Vec<String> = rounds.iter().map(|r| format!("{r:.2}")).collect();
        let _ = writeln!(
            out,
            "| {what} | {}× | {} | {} |",
            show(measured, 2),
            rounds.join(" / "),
            verdict(measured.map(|m| m >= *min))
        );
    }
    let redis = |backend: &str, workload: &str| {
        median_of(
            runs_of(runs, backend, workload),
            &["footprint", "redis_bytes_per_session"],
        )
    };
    let ours = redis("tiered", "create");
    let peer = redis("tower-sessions-redis-store", "redis-create");
    let pass = ours.zip(peer).map(|(o, p)| o <= p);
    complete = complete.and(pass.map(drop));
    let per_round = |backend: &str, workload: &str| -> Vec<String> {
        runs_of(runs, backend, workload)
            .iter()
            .filter(|r| valid(r))
            .filter_map(|r| number(r, &["footprint", "redis_bytes_per_session"]))
            .map(|b| format!("{b:.0}"))
            .collect()
    };
    let _ = writeln!(
        out,
        "| Redis bytes per session, everything written ≤ peer's (`used_memory` delta) | {} B vs {} B | {} vs {} | {} |",
        show(ours, 0),
        show(peer, 0),
        per_round("tiered", "create").join(" / "),
        per_round("tower-sessions-redis-store", "redis-create").join(" / "),
        verdict(pass)
    );
    complete
}

/// Runs outside the comparison (ours only, e.g. touch, revoke, mixed).
fn others(out: &mut String, runs: &Runs) {
    let known = |key: &(String, String)| {
        ROWS.iter()
            .any(|r| r.backend == key.0 && r.workload == key.1)
    };
    let rest: Vec<_> = runs.iter().filter(|(key, _)| !known(key)).collect();
    if rest.is_empty() {
        return;
    }
    out.push_str("\nOther runs (ours only, medians):\n\n");
    out.push_str("| backend | workload | ops | ops/s | p50 µs | p99 µs | max µs | peak RSS MiB | valid runs |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for ((backend, workload), these) in rest {
        let _ = writeln!(
            out,
            "| {backend} | {workload} | {} | {} | {} | {} | {} | {} | {}/{} |",
            show(median_of(these, &["ops"]), 0),
            show(median_of(these, &["ops_per_sec"]), 0),
            show(median_of(these, &["p50_us"]), 0),
            show(median_of(these, &["p99_us"]), 0),
            show(median_of(these, &["max_us"]), 0),
            show(median_of(these, &["peak_rss_kib"]).map(|k| k / 1024.0), 1),
            these.iter().filter(|r| valid(r)).count(),
            these.len(),
        );
    }
}

/// Invalid runs, failed checks and warnings worth reading.
fn problems(out: &mut String, runs: &Runs) {
    let mut lines = Vec::new();
    for ((backend, workload), these) in runs {
        for (k, run) in these.iter().enumerate() {
            let name = format!("{backend} {workload} run {}", k + 1);
            if let Some(err) = run.get("error").and_then(Value::as_str) {
                lines.push(format!("- {name}: **did not run**: {err}"));
            }
            for field in ["errors", "failed_checks"] {
                for item in run
                    .get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    lines.push(format!(
                        "- {name}: **invalid**: {}",
                        item.as_str().unwrap_or("?")
                    ));
                }
            }
            for note in run
                .get("notes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let note = note.as_str().unwrap_or("");
                if note.contains("Redis failed") {
                    lines.push(format!("- {name}: {note}"));
                }
            }
        }
    }
    if lines.is_empty() {
        out.push_str("\nEvery run was valid: every operation succeeded and checked its result, writes were counted in the durable store, and the tiered store's counters confirm which tier served the reads.\n");
    } else {
        out.push_str("\nProblems:\n\n");
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(backend: &str, workload: &str, ops_per_sec: f64) -> String {
        serde_json::json!({
            "backend": backend, "workload": workload, "valid": true, "ops": 100,
            "ops_per_sec": ops_per_sec, "p50_us": 1.0, "p99_us": 2.0, "max_us": 3.0,
            "peak_rss_kib": 2048,
            "footprint": {"sessions": 10, "redis_bytes_per_session": ops_per_sec}
        })
        .to_string()
    }

    #[test]
    fn ratios_are_medians_of_same_round_ratios() {
        let lines = [
            report("tiered", "validate", 300.0),
            report("tower-sessions-redis-store", "redis-load", 100.0),
            report("tiered", "validate", 100.0),
            report("tower-sessions-redis-store", "redis-load", 100.0),
            report("tiered", "validate", 200.0),
            report("tower-sessions-redis-store", "redis-load", 50.0),
        ]
        .join("\n");
        let (markdown, complete) = render(&lines);
        // Rounds: 3.0, 1.0, 4.0 -> median 3.0 (a ratio of medians would say 2.0).
        assert!(
            markdown.contains("| validate | peer: `RedisStore::load` | 100 |"),
            "{markdown}"
        );
        assert!(markdown.contains("| 3.00 | 3/3 |"), "{markdown}");
        assert!(
            markdown
                .contains("≥ 1.5× peer `RedisStore::load` | 3.00× | 3.00 / 1.00 / 4.00 | PASS |"),
            "{markdown}"
        );
        assert!(!complete, "targets without runs are not evaluated");
    }

    #[test]
    fn invalid_runs_are_listed_and_left_out_of_medians() {
        let mut bad: Value = serde_json::from_str(&report("tiered", "create", 1e9)).unwrap();
        bad["valid"] = Value::Bool(false);
        bad["failed_checks"] = serde_json::json!(["rows missing"]);
        let lines = [report("tiered", "create", 10.0), bad.to_string()].join("\n");
        let (markdown, complete) = render(&lines);
        assert!(markdown.contains("| create | **ours**"), "{markdown}");
        assert!(
            markdown.contains("| 10 | 1 | 2 | 3 | 2.0 | 1.00 | 1/2 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("tiered create run 2: **invalid**: rows missing"),
            "{markdown}"
        );
        assert!(!complete);
    }

    #[test]
    fn median_of_even_counts_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }
}
