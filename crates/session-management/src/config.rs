//! Configuration, parsed from a key/value map the caller can inject. Only [`Config::from_env`] reads the
//! process environment (and a `.env` file).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::Ttl;
use crate::store::TieredOptions;

/// Which kind of deployment this is (`SESSION_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagerEnvironment {
    /// Real users: a durable store must be configured explicitly.
    Production,
    /// The default: an embedded SQLite file when no `DATABASE_URL` is set.
    #[default]
    Development,
    /// Tests: the in-memory store unless a URL is given.
    Test,
}

impl ManagerEnvironment {
    /// The name as written in `SESSION_ENV`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Development => "development",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for ManagerEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ManagerEnvironment {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Self::Production),
            "development" | "dev" | "" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            other => Err(Error::Config {
                variable: "SESSION_ENV",
                reason: format!(
                    "unknown environment {other:?} (expected production, development or test)"
                ),
            }),
        }
    }
}

/// The storage the configuration resolves to.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreSpec {
    /// [`MemoryStore`](crate::store::MemoryStore).
    Memory,
    /// [`SqliteStore`](crate::store::SqliteStore) at this `sqlite://` URL.
    Sqlite {
        /// The connection URL.
        url: String,
    },
    /// [`PostgresStore`](crate::store::PostgresStore) at this `postgres://` URL.
    Postgres {
        /// The connection URL (it may hold a password: print it through `Display`, which redacts).
        url: String,
    },
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite { url } => write!(f, "Sqlite({url})"),
            Self::Postgres { url } => write!(f, "Postgres({})", crate::factory::redact_url(url)),
        }
    }
}

/// Where the store is, fit to print: no password is ever shown.
impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory (in-process, nothing kept after exit)"),
            Self::Sqlite { url } | Self::Postgres { url } => {
                f.write_str(&crate::factory::redact_url(url))
            }
        }
    }
}

/// The Redis hot tier, when `REDIS_URL` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// `REDIS_URL`.
    pub url: String,
    /// `SESSION_KEY_PREFIX`: every key starts with it (default `sm:`).
    pub key_prefix: String,
    /// Timeouts and breaker settings (`SESSION_REDIS_TIMEOUT_MS`).
    pub options: TieredOptions,
}

impl fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSpec")
            .field("url", &crate::factory::redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("options", &self.options)
            .finish()
    }
}

/// Everything the factory needs, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SESSION_ENV`.
    pub environment: ManagerEnvironment,
    /// The resolved durable store (from `DATABASE_URL`, or the default for the environment).
    pub store: StoreSpec,
    /// The Redis tier in front of it, if any.
    pub redis: Option<RedisSpec>,
    /// `SESSION_MAX_LIFETIME`: no session lives longer than this after its creation, however often
    /// it is touched. Defaults to the largest TTL, 400 days.
    pub max_lifetime: Duration,
}

impl Config {
    /// Reads the process environment, over a `.env` file when one is found (the environment wins).
    pub fn from_env() -> Result<Self> {
        Self::from_map(&environment()?)
    }

    /// Parses a configuration from key/value pairs named like the environment variables.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use session_management::{Config, ManagerEnvironment, StoreSpec};
    ///
    /// let vars = HashMap::from([("SESSION_ENV".to_owned(), "test".to_owned())]);
    /// let config = Config::from_map(&vars)?;
    /// assert_eq!(config.environment, ManagerEnvironment::Test);
    /// assert_eq!(config.store, StoreSpec::Memory);
    /// # Ok::<(), session_management::Error>(())
    /// ```
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let environment = get("SESSION_ENV").unwrap_or("").parse()?;
        let store = match get("DATABASE_URL") {
            Some(url) => store_from_url(url)?,
            None => match environment {
                ManagerEnvironment::Test => StoreSpec::Memory,
                ManagerEnvironment::Development => StoreSpec::Sqlite {
                    url: default_sqlite_url(vars),
                },
                ManagerEnvironment::Production => {
                    return Err(Error::Config {
                        variable: "DATABASE_URL",
                        reason: "must be set when SESSION_ENV=production (no silent fallback)"
                            .to_owned(),
                    });
                }
            },
        };
        let redis = get("REDIS_URL")
            .map(|url| redis_spec(url, &get))
            .transpose()?;
        let max_lifetime = match get("SESSION_MAX_LIFETIME") {
            None => Duration::from_secs(Ttl::MAX_SECONDS),
            Some(raw) => {
                let secs = raw
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=Ttl::MAX_SECONDS).contains(s));
                Duration::from_secs(secs.ok_or_else(|| Error::Config {
                    variable: "SESSION_MAX_LIFETIME",
                    reason: format!("must be a number of seconds from 1 to {}", Ttl::MAX_SECONDS),
                })?)
            }
        };
        Ok(Self {
            environment,
            store,
            redis,
            max_lifetime,
        })
    }
}

fn redis_spec<'a>(url: &str, get: &impl Fn(&str) -> Option<&'a str>) -> Result<RedisSpec> {
    if url.starts_with("rediss://") {
        return Err(Error::Config {
            variable: "REDIS_URL",
            reason: "TLS (rediss://) is not supported by this build: use redis://, through a TLS \
                     tunnel (stunnel, a sidecar) where the network needs encryption"
                .to_owned(),
        });
    }
    if !url.starts_with("redis://") {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        return Err(Error::Config {
            variable: "REDIS_URL",
            reason: format!("unsupported scheme {scheme:?} (expected redis://)"),
        });
    }
    let key_prefix = get("SESSION_KEY_PREFIX").unwrap_or("sm:").to_owned();
    if key_prefix.len() > 64
        || key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Config {
            variable: "SESSION_KEY_PREFIX",
            reason: "must be at most 64 characters, without spaces or control characters".into(),
        });
    }
    let mut options = TieredOptions::default();
    if let Some(raw) = get("SESSION_REDIS_TIMEOUT_MS") {
        let ms = raw
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=10_000).contains(ms));
        options.redis_timeout = Duration::from_millis(ms.ok_or_else(|| Error::Config {
            variable: "SESSION_REDIS_TIMEOUT_MS",
            reason: "must be a number of milliseconds from 1 to 10000".into(),
        })?);
    }
    Ok(RedisSpec {
        url: url.to_owned(),
        key_prefix,
        options,
    })
}

/// The process environment over the `.env` file (searched from the current directory up), as one
/// map; the environment wins. The one place the library reads the environment.
pub fn environment() -> Result<HashMap<String, String>> {
    let mut vars: HashMap<String, String> = HashMap::new();
    if let Ok(iter) = dotenvy::dotenv_iter() {
        for item in iter {
            let (key, value) = item.map_err(|err| Error::Config {
                variable: ".env",
                reason: err.to_string(),
            })?;
            vars.insert(key, value);
        }
    }
    vars.extend(std::env::vars());
    Ok(vars)
}

/// Picks the backend from the URL's scheme, as sqlx does; an unknown scheme is named in the error.
fn store_from_url(url: &str) -> Result<StoreSpec> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    match scheme {
        "sqlite" => Ok(StoreSpec::Sqlite {
            url: url.to_owned(),
        }),
        "memory" => Ok(StoreSpec::Memory),
        "postgres" | "postgresql" => Ok(StoreSpec::Postgres {
            url: url.to_owned(),
        }),
        "" => Err(Error::Config {
            variable: "DATABASE_URL",
            reason: "has no scheme (expected postgres://, sqlite:// or memory://)".to_owned(),
        }),
        other => Err(Error::Config {
            variable: "DATABASE_URL",
            reason: format!(
                "unsupported scheme {other:?} (expected postgres://, sqlite:// or memory://)"
            ),
        }),
    }
}

/// The embedded database's default location: `$SESSION_DATA_DIR/sessions.db`, else
/// `$XDG_DATA_HOME/session-management/sessions.db`, else
/// `$HOME/.local/share/session-management/sessions.db`, else `./.session-management/sessions.db`.
pub fn default_sqlite_path(vars: &HashMap<String, String>) -> PathBuf {
    let get = |key: &str| {
        vars.get(key)
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from)
    };
    let dir = get("SESSION_DATA_DIR")
        .or_else(|| get("XDG_DATA_HOME").map(|d| d.join("session-management")))
        .or_else(|| get("HOME").map(|h| h.join(".local/share/session-management")))
        .unwrap_or_else(|| PathBuf::from(".session-management"));
    dir.join("sessions.db")
}

fn default_sqlite_url(vars: &HashMap<String, String>) -> String {
    format!("sqlite://{}", default_sqlite_path(vars).display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&vars)
    }

    fn config_error_variable(pairs: &[(&str, &str)]) -> &'static str {
        match config(pairs) {
            Err(Error::Config { variable, .. }) => variable,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn test_environment_gives_memory() {
        assert_eq!(
            config(&[("SESSION_ENV", "test")]).unwrap().store,
            StoreSpec::Memory
        );
    }

    #[test]
    fn test_environment_honours_an_explicit_url() {
        let c = config(&[
            ("SESSION_ENV", "test"),
            ("DATABASE_URL", "sqlite:///tmp/x.db"),
        ])
        .unwrap();
        assert!(matches!(c.store, StoreSpec::Sqlite { .. }));
    }

    #[test]
    fn development_defaults_to_sqlite_under_the_data_dir() {
        let c = config(&[("HOME", "/home/ada")]).unwrap();
        assert_eq!(c.environment, ManagerEnvironment::Development);
        assert_eq!(
            c.store,
            StoreSpec::Sqlite {
                url: "sqlite:///home/ada/.local/share/session-management/sessions.db".into()
            }
        );
        let c = config(&[("HOME", "/home/ada"), ("SESSION_DATA_DIR", "/srv/sm")]).unwrap();
        assert_eq!(
            c.store,
            StoreSpec::Sqlite {
                url: "sqlite:///srv/sm/sessions.db".into()
            }
        );
    }

    #[test]
    fn production_without_database_url_names_the_variable() {
        assert_eq!(
            config_error_variable(&[("SESSION_ENV", "production")]),
            "DATABASE_URL"
        );
    }

    #[test]
    fn unknown_scheme_is_named() {
        let err = config(&[("DATABASE_URL", "mysql://localhost/db")]).unwrap_err();
        assert!(err.to_string().contains("\"mysql\""), "{err}");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn redis_over_tls_is_refused_up_front_without_echoing_the_password() {
        let err = config(&[
            ("DATABASE_URL", "postgres://db/sm"),
            ("REDIS_URL", "rediss://:hunter2@cache:6380"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("REDIS_URL") && text.contains("TLS"), "{text}");
        assert!(!format!("{text} {err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(
            config_error_variable(&[("SESSION_ENV", "staging")]),
            "SESSION_ENV"
        );
        assert_eq!(
            config_error_variable(&[("SESSION_MAX_LIFETIME", "0")]),
            "SESSION_MAX_LIFETIME"
        );
        assert_eq!(
            config_error_variable(&[("SESSION_MAX_LIFETIME", "soon")]),
            "SESSION_MAX_LIFETIME"
        );
    }

    #[test]
    fn postgres_and_redis_urls_are_read_and_passwords_never_printed() {
        let c = config(&[
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/sm"),
            ("REDIS_URL", "redis://:hunter2@cache:6379/0"),
            ("SESSION_KEY_PREFIX", "acme:"),
            ("SESSION_REDIS_TIMEOUT_MS", "20"),
        ])
        .unwrap();
        assert!(matches!(c.store, StoreSpec::Postgres { .. }));
        let redis = c.redis.clone().unwrap();
        assert_eq!(redis.key_prefix, "acme:");
        assert_eq!(redis.options.redis_timeout, Duration::from_millis(20));
        let printed = format!("{c:?} {}", c.store);
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn redis_defaults_and_bad_values() {
        let c = config(&[("SESSION_ENV", "test"), ("REDIS_URL", "redis://127.0.0.1")]).unwrap();
        assert_eq!(c.redis.unwrap().key_prefix, "sm:");
        assert_eq!(
            config_error_variable(&[("REDIS_URL", "http://x")]),
            "REDIS_URL"
        );
        assert_eq!(
            config_error_variable(&[("REDIS_URL", "redis://x"), ("SESSION_KEY_PREFIX", "a b")]),
            "SESSION_KEY_PREFIX"
        );
        assert_eq!(
            config_error_variable(&[
                ("REDIS_URL", "redis://x"),
                ("SESSION_REDIS_TIMEOUT_MS", "0")
            ]),
            "SESSION_REDIS_TIMEOUT_MS"
        );
    }

    #[test]
    fn max_lifetime_is_read() {
        let c = config(&[("SESSION_ENV", "test"), ("SESSION_MAX_LIFETIME", "3600")]).unwrap();
        assert_eq!(c.max_lifetime, Duration::from_secs(3600));
    }
}
