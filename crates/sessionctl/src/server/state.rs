//! What every handler shares: the manager, the API key, the metrics handle, the studio's secret.

use std::fmt;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use session_management::UserManager;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The API key clients present as `Authorization: Bearer <key>`. Only its SHA-256 is kept, and the
/// comparison takes the same time whatever the input.
#[derive(Clone)]
pub struct ApiKey([u8; 32]);

impl ApiKey {
    /// Wraps the configured key (`SESSION_API_KEY`).
    pub fn new(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Whether `presented` is the key, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&digest).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Shared state of the HTTP server; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    manager: UserManager,
    api_key: Option<ApiKey>,
    metrics: Option<PrometheusHandle>,
    studio_secret: [u8; 32],
}

impl AppState {
    /// State over `manager`. Without an API key the API is open (the server then only binds to
    /// loopback). The studio's session cookies are signed with a secret drawn at start-up.
    pub fn new(
        manager: UserManager,
        api_key: Option<ApiKey>,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let mut studio_secret = [0u8; 32];
        getrandom::fill(&mut studio_secret).expect("the OS random number generator works");
        Self {
            inner: Arc::new(Inner {
                manager,
                api_key,
                metrics,
                studio_secret,
            }),
        }
    }

    /// The manager.
    pub fn manager(&self) -> &UserManager {
        &self.inner.manager
    }

    /// The API key, if one is configured.
    pub fn api_key(&self) -> Option<&ApiKey> {
        self.inner.api_key.as_ref()
    }

    /// The Prometheus handle, when metrics are recorded.
    pub fn metrics(&self) -> Option<&PrometheusHandle> {
        self.inner.metrics.as_ref()
    }

    /// The secret the studio signs its cookies and forms with.
    pub fn studio_secret(&self) -> &[u8; 32] {
        &self.inner.studio_secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_matches_only_itself_and_never_prints() {
        let key = ApiKey::new("correct horse");
        assert!(key.matches("correct horse"));
        assert!(!key.matches("correct hors"));
        assert!(!key.matches(""));
        assert!(!format!("{key:?}").contains("correct"));
    }
}
