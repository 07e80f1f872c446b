//! `sessionctl` driven as a user would: the real binary, a fresh SQLite file per test, a fresh
//! process per command (so every command is also a restart).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// One test's sandbox: its own directory and database, and a clean environment.
struct Sandbox {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
        Self {
            env: vec![("DATABASE_URL".into(), url)],
            dir,
        }
    }

    fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().cloned())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs with `--json`, expects success, returns the parsed stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn create_user(&self, app: &str, email: &str) -> String {
        self.json(&[
            "users", "create", "--app", app, "--email", email, "--name", "Test",
        ])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn create_session(&self, app: &str, user: &str) -> (String, String) {
        let created = self.json(&[
            "sessions",
            "create",
            "--app",
            app,
            "--user",
            user,
            "--ip",
            "198.51.100.4",
            "--user-agent",
            "Mozilla/5.0 cli-test",
            "--ttl",
            "3600",
        ]);
        (
            created["token"].as_str().unwrap().to_owned(),
            created["session"]["id"].as_str().unwrap().to_owned(),
        )
    }

    fn db_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("sessions.db")
            })
            .collect()
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn session_round_trip_survives_restarts_and_stops_after_revoke() {
    let sb = Sandbox::new();
    let user = sb.create_user("web", "ada@example.com");
    let (token, id) = sb.create_session("web", &user);
    assert_eq!(token.len(), 43);

    // Validate from stdin, in a new process each time.
    for _ in 0..2 {
        let out = sb.run_with_stdin(
            &["--json", "sessions", "validate", "--app", "web"],
            &format!("{token}\n"),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let session: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(session["id"], id.as_str());
        assert_eq!(session["user_id"], user.as_str());
        assert_eq!(session["ip"], "198.51.100.4");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&token),
            "validate never prints the token"
        );
    }
    // Also through --token, and never for another app.
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", &token])),
        0
    );
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "admin", "--token", &token])),
        3
    );

    let listed = sb.json(&["sessions", "list", "--app", "web", "--user", &user]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    sb.json(&["sessions", "revoke", "--app", "web", "--id", &id]);
    let out = sb.run_with_stdin(&["sessions", "validate", "--app", "web"], &token);
    assert_eq!(code(&out), 3, "a revoked token is rejected");
    assert!(stderr(&out).contains("does not open a live session"));

    // The token is nowhere at rest; its id is.
    let mut at_rest = Vec::new();
    for file in sb.db_files() {
        at_rest.extend(std::fs::read(file).unwrap());
    }
    assert!(!at_rest.is_empty());
    let contains = |needle: &[u8]| at_rest.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(token.as_bytes()), "the token must not be stored");
    assert!(
        contains(user.as_bytes()),
        "sanity: the search does find stored values"
    );
}

#[test]
fn rotate_touch_and_revoke_all_from_the_shell() {
    let sb = Sandbox::new();
    let user = sb.create_user("web", "ada@example.com");
    let (token, _) = sb.create_session("web", &user);
    sb.create_session("web", &user);

    let touched = sb.run_with_stdin(&["--json", "sessions", "touch", "--app", "web"], &token);
    assert_eq!(code(&touched), 0, "{}", stderr(&touched));
    let rotated = sb.run_with_stdin(&["--json", "sessions", "rotate", "--app", "web"], &token);
    assert_eq!(code(&rotated), 0, "{}", stderr(&rotated));
    let rotated: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let new_token = rotated["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", &token])),
        3
    );
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", new_token])),
        0
    );

    let revoked = sb.json(&["sessions", "revoke-all", "--app", "web", "--user", &user]);
    assert_eq!(revoked["revoked"], 2);
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", new_token])),
        3
    );
}

#[test]
fn users_commands_create_get_list_update_and_delete() {
    let sb = Sandbox::new();
    let ada = sb.create_user("web", "Ada@Example.com");
    let bob = sb.create_user("web", "bob@example.com");
    assert_eq!(
        sb.json(&["users", "get", "--app", "web", "--id", &ada])["email"],
        "ada@example.com"
    );
    assert_eq!(
        sb.json(&["users", "get", "--app", "web", "--email", "BOB@example.com"])["id"],
        bob.as_str()
    );

    let first = sb.json(&["users", "list", "--app", "web", "--limit", "1"]);
    assert_eq!(first["items"][0]["id"], ada.as_str());
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = sb.json(&[
        "users", "list", "--app", "web", "--limit", "1", "--cursor", cursor,
    ]);
    assert_eq!(second["items"][0]["id"], bob.as_str());
    assert!(second["next_cursor"].is_null());

    let updated = sb.json(&[
        "users", "update", "--app", "web", "--id", &bob, "--name", "Robert",
    ]);
    assert_eq!(updated["name"], "Robert");

    let (token, _) = sb.create_session("web", &ada);
    sb.json(&["users", "delete", "--app", "web", "--id", &ada]);
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web", "--id", &ada])),
        3
    );
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", &token])),
        3,
        "delete revokes sessions"
    );
}

#[test]
fn reset_of_one_app_leaves_the_other_untouched_and_asks_first() {
    let sb = Sandbox::new();
    let w = sb.create_user("web", "w@example.com");
    sb.create_session("web", &w);
    let a = sb.create_user("admin", "a@example.com");
    let (admin_token, _) = sb.create_session("admin", &a);

    // Without --yes it asks; anything but "yes" aborts and changes nothing.
    let out = sb.run_with_stdin(&["db", "reset", "--app", "web"], "no\n");
    assert_eq!(code(&out), 7);
    assert!(stderr(&out).contains("Type \"yes\""));
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web", "--id", &w])),
        0
    );

    let out = sb.run_with_stdin(&["db", "reset", "--app", "web"], "yes\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web", "--id", &w])),
        3
    );
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "admin", "--id", &a])),
        0
    );
    assert_eq!(
        code(&sb.run(&[
            "sessions",
            "validate",
            "--app",
            "admin",
            "--token",
            &admin_token
        ])),
        0
    );

    let status = sb.json(&["db", "status"]);
    let apps = status["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["app"], "admin");
    assert_eq!(
        (apps[0]["users"].as_u64(), apps[0]["sessions"].as_u64()),
        (Some(1), Some(1))
    );

    let all = sb.json(&["db", "reset", "--all", "--yes"]);
    assert_eq!(all["reset"][0]["app"], "admin");
    assert!(
        sb.json(&["db", "status"])["apps"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn reset_in_production_needs_force() {
    let sb = Sandbox::new().with_env("SESSION_ENV", "production");
    let w = sb.create_user("web", "w@example.com");
    let out = sb.run(&["db", "reset", "--app", "web", "--yes"]);
    assert_eq!(code(&out), 7);
    assert!(stderr(&out).contains("--force"));
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web", "--id", &w])),
        0
    );
    assert_eq!(
        code(&sb.run(&["db", "reset", "--app", "web", "--yes", "--force"])),
        0
    );
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web", "--id", &w])),
        3
    );
}

#[test]
fn bad_input_gets_a_clear_error_naming_the_field_and_a_non_zero_exit() {
    let sb = Sandbox::new();
    let user = sb.create_user("web", "ada@example.com");
    // `users create` and `sessions create` with one field changed from a valid value.
    let user_create = |app: &str, email: &str, name: &str| -> Vec<String> {
        [
            "users", "create", "--app", app, "--email", email, "--name", name,
        ]
        .map(String::from)
        .to_vec()
    };
    let session_create = |ip: &str, agent: &str, ttl: &str, extra: &[&str]| -> Vec<String> {
        let base = [
            "sessions", "create", "--app", "web", "--user", &user, "--ip", ip,
        ];
        let rest = ["--user-agent", agent, "--ttl", ttl];
        base.iter()
            .chain(&rest)
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    let plain = |args: &[&str]| -> Vec<String> { args.iter().map(|a| a.to_string()).collect() };
    let long_agent = "x".repeat(513);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (user_create("Web", "a@example.com", "A"), "app"),
        (user_create("web", "nope", "A"), "email"),
        (user_create("web", "b@example.com", ""), "name"),
        (
            plain(&["users", "get", "--app", "web", "--id", "123"]),
            "user_id",
        ),
        (
            plain(&["users", "list", "--app", "web", "--limit", "0"]),
            "limit",
        ),
        (session_create("999.1.1.1", "x", "60", &[]), "ip"),
        (session_create("::1", &long_agent, "60", &[]), "user_agent"),
        (session_create("::1", "x", "0", &[]), "ttl"),
        (session_create("::1", "x", "34560001", &[]), "ttl"),
        (session_create("::1", "x", "60", &["--data", "[1]"]), "data"),
        (
            plain(&[
                "sessions",
                "validate",
                "--app",
                "web",
                "--token",
                "not-a-token",
            ]),
            "token",
        ),
        (
            plain(&["sessions", "revoke", "--app", "web", "--id", "xyz"]),
            "session_id",
        ),
    ];
    for (args, field) in &cases {
        let mut all = vec!["--json"];
        all.extend(args.iter().map(String::as_str));
        let out = sb.run(&all);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
        assert_eq!(err["error"]["code"], "invalid_input", "{args:?}");
        assert_eq!(err["error"]["field"], *field, "{args:?}");
    }
    let out = sb.run(&[
        "users",
        "create",
        "--app",
        "web",
        "--email",
        "ADA@example.com",
        "--name",
        "Dup",
    ]);
    assert_eq!(code(&out), 4);
    assert!(stderr(&out).contains("already exists"));
    let unknown_session = "a".repeat(64);
    assert_eq!(
        code(&sb.run(&[
            "sessions",
            "revoke",
            "--app",
            "web",
            "--id",
            &unknown_session
        ])),
        3
    );
    let ghost = "01890000-0000-7000-8000-000000000000";
    assert_eq!(
        code(&sb.run(&["sessions", "list", "--app", "web", "--user", ghost])),
        3
    );
    // Nothing above changed the store.
    let status = sb.json(&["db", "status"]);
    assert_eq!(status["apps"][0]["users"], 1);
    assert_eq!(status["apps"][0]["sessions"], 0);
}

#[test]
fn configuration_errors_name_the_variable() {
    let sb = Sandbox::new().with_env("DATABASE_URL", "mysql://localhost/x");
    let out = sb.run(&["db", "status"]);
    assert_eq!(code(&out), 6);
    assert!(
        stderr(&out).contains("DATABASE_URL") && stderr(&out).contains("\"mysql\""),
        "{}",
        stderr(&out)
    );

    let sb = Sandbox {
        env: vec![("SESSION_ENV".into(), "production".into())],
        dir: tempfile::tempdir().unwrap(),
    };
    let out = sb.run(&["db", "status"]);
    assert_eq!(code(&out), 6);
    assert!(stderr(&out).contains("DATABASE_URL"), "{}", stderr(&out));
}

#[test]
fn the_embedded_default_lives_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().display().to_string();
    let sb = Sandbox {
        env: vec![("HOME".into(), home)],
        dir,
    };
    let user = sb.create_user("web", "ada@example.com");
    let (token, _) = sb.create_session("web", &user);
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", &token])),
        0
    );
    let db = sb
        .dir
        .path()
        .join(".local/share/session-management/sessions.db");
    assert!(db.exists(), "{db:?} was created on first use");
}

#[test]
fn every_command_has_help() {
    let sb = Sandbox::new();
    let commands: &[&[&str]] = &[
        &[],
        &["db"],
        &["db", "migrate"],
        &["db", "status"],
        &["db", "reset"],
        &["db", "purge-expired"],
        &["users"],
        &["users", "create"],
        &["users", "get"],
        &["users", "list"],
        &["users", "update"],
        &["users", "delete"],
        &["sessions"],
        &["sessions", "create"],
        &["sessions", "validate"],
        &["sessions", "touch"],
        &["sessions", "rotate"],
        &["sessions", "list"],
        &["sessions", "revoke"],
        &["sessions", "revoke-all"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = sb.run(&args);
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web"])),
        2,
        "missing --id/--email is a usage error"
    );
}

#[test]
fn a_token_starting_with_a_hyphen_is_accepted_by_token() {
    let sb = Sandbox::new();
    // Well-formed (43 base64url characters) but unknown: the point is that clap does not take it for a flag.
    let token = format!("-{}", "A".repeat(42));
    let out = sb.run(&[
        "--json", "sessions", "validate", "--app", "web", "--token", &token,
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[path = "../../session-management/tests/support/redis_prefix.rs"]
mod redis_prefix;
#[path = "../../session-management/tests/support/test_db.rs"]
mod test_db;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_and_redis_a_round_trip_works_and_reset_clears_one_apps_keys() {
    let db = test_db::TestDatabase::create().await;
    let prefix = redis_prefix::TestPrefix::new();
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox {
        env: vec![
            ("DATABASE_URL".into(), db.url().to_owned()),
            ("REDIS_URL".into(), prefix.url().to_owned()),
            ("SESSION_KEY_PREFIX".into(), prefix.as_str().to_owned()),
        ],
        dir,
    };
    let status = sb.json(&["db", "migrate"]);
    assert!(status["migrations"].as_array().unwrap().len() >= 2);
    let web_user = sb.create_user("web", "ada@example.com");
    let (token, id) = sb.create_session("web", &web_user);
    let admin_user = sb.create_user("admin", "boss@example.com");
    let (admin_token, _) = sb.create_session("admin", &admin_user);
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", &token])),
        0
    );
    assert_eq!(
        prefix.count_keys().await,
        2,
        "both sessions are cached in Redis, one key each"
    );
    let status = sb.json(&["db", "status"]);
    assert!(status["redis"].as_str().unwrap().contains(prefix.as_str()));
    assert_eq!(status["backend"], "tiered");

    sb.json(&["sessions", "revoke", "--app", "web", "--id", &id]);
    assert_eq!(
        code(&sb.run(&["sessions", "validate", "--app", "web", "--token", &token])),
        3
    );

    sb.json(&["db", "reset", "--app", "web", "--yes"]);
    let dump = prefix.dump().await;
    let own = prefix.as_str().as_bytes();
    assert!(!dump.is_empty());
    let names: Vec<String> = dump
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(
        dump.iter()
            .all(|(k, _)| k[own.len()..].starts_with(b"admin:")),
        "only admin keys remain: {names:?}"
    );
    assert_eq!(
        code(&sb.run(&[
            "sessions",
            "validate",
            "--app",
            "admin",
            "--token",
            &admin_token
        ])),
        0
    );
    assert_eq!(
        code(&sb.run(&["users", "get", "--app", "web", "--id", &web_user])),
        3
    );
}
