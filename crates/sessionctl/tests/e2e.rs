//! The real binary, started as the README says, on a free port, driven with a real HTTP client.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `sessionctl serve --addr 127.0.0.1:0` and reads the address it prints.
    fn start(key: Option<&str>, addr: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessionctl"));
        command
            .args(["serve", "--addr", addr])
            .env_clear()
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("s.db").display()),
            )
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(key) = key {
            command.env("SESSION_API_KEY", key);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        while let Some(Ok(line)) = lines.next() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.strip_prefix("sessionctl: listening on ") {
                let base = rest.split_whitespace().next().unwrap().to_owned();
                // Keep draining stderr so the server never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok(Self {
                    child,
                    base,
                    _dir: dir,
                });
            }
        }
        let status = child.wait().unwrap();
        Err(format!("exited with {status} before listening:\n{seen}"))
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().ok();
        panic!("the server did not stop on SIGTERM within 5 s");
    }
}

#[tokio::test]
async fn the_binary_serves_the_api_and_stops_cleanly_on_sigterm() {
    let server = Server::start(Some("e2e-key"), "127.0.0.1:0").unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let health: Value = http
        .get(url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let unauthorized = http
        .post(url("/v1/apps/web/users"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let user: Value = http
        .post(url("/v1/apps/web/users"))
        .bearer_auth("e2e-key")
        .json(&json!({"email": "ada@example.com", "name": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = user["id"].as_str().unwrap();
    let created = http
        .post(url(&format!("/v1/apps/web/users/{user_id}/sessions")))
        .bearer_auth("e2e-key")
        .json(&json!({"ip": "127.0.0.1", "user_agent": "e2e", "ttl_seconds": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap();

    let validate = |token: String| {
        let http = http.clone();
        let target = url("/v1/apps/web/sessions/validate");
        async move {
            http.post(target)
                .bearer_auth("e2e-key")
                .json(&json!({ "token": token }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(validate(token.to_owned()).await, 200);
    let revoked = http
        .post(url("/v1/apps/web/sessions/revoke"))
        .bearer_auth("e2e-key")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(validate(token.to_owned()).await, 401);

    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sm_http_requests_total"));
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn without_an_api_key_the_server_refuses_to_listen_beyond_loopback() {
    let err = Server::start(None, "0.0.0.0:0").err().expect("must refuse");
    assert!(err.contains("SESSION_API_KEY"), "{err}");
    // Loopback is allowed (open API for local development).
    let server = Server::start(None, "127.0.0.1:0").unwrap();
    assert!(server.terminate().success());
}
