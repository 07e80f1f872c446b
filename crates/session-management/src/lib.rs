//! Users and login sessions for several apps, behind one [`UserManager`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> session_management::Result<()> {
//! use std::collections::HashMap;
//! use session_management::{
//!     App, Config, CreateUserData, SessionMetadata, Ttl, UserManagerFactory,
//! };
//!
//! // `UserManagerFactory::create()` reads the environment; here the configuration is injected.
//! let config = Config::from_map(&HashMap::from([("SESSION_ENV".into(), "test".into())]))?;
//! let manager = UserManagerFactory::from_config(config).await?;
//!
//! let web = App::parse("web")?;
//! let user = manager
//!     .create(&web, CreateUserData { email: "ada@example.com".into(), name: "Ada".into() })
//!     .await?;
//! let (token, session) = manager
//!     .create_session(
//!         &web,
//!         user.id,
//!         SessionMetadata::parse("203.0.113.7", "Mozilla/5.0")?,
//!         Ttl::from_secs(3600)?,
//!     )
//!     .await?;
//!
//! // Hand `token.expose_secret()` to the client; later, validate what it sends back.
//! let valid = manager.validate(&web, &token).await?;
//! assert_eq!(valid.map(|s| s.id), Some(session.id));
//!
//! // Nothing crosses apps.
//! assert!(manager.validate(&App::parse("admin")?, &token).await?.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`model`]: domain types with `parse` constructors (`App`, `Email`, `SessionMetadata`, `Ttl`, …);
//! - [`token`]: [`SessionToken`] (the client's secret) and [`SessionId`] (its SHA-256, the public handle);
//! - [`error`]: the one [`Error`] enum;
//! - [`config`]: [`Config`], parsed from an injectable key/value map;
//! - [`factory`]: [`UserManagerFactory`], which opens the store the configuration names;
//! - [`manager`]: [`UserManager`], where validation, tokens and TTL rules live;
//! - [`clock`]: where "now" comes from ([`SystemClock`], or [`ManualClock`] in tests);
//! - [`background`]: store upkeep and expired-session sweeps for long-running processes;
//! - [`store`]: the [`Store`] trait and its backends, [`MemoryStore`], [`SqliteStore`] and
//!   [`PostgresStore`]; [`RedisSessionCache`], the hot tier, and [`TieredStore`], Redis in front of
//!   a durable store (with its circuit breaker in `store::breaker`).

pub mod background;
pub mod clock;
pub mod config;
pub mod error;
pub mod factory;
pub mod manager;
pub mod model;
pub mod store;
pub mod token;

pub use background::{Background, BackgroundOptions};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ManagerEnvironment, RedisSpec, StoreSpec};
pub use error::{ConflictKind, Error, Result};
pub use factory::UserManagerFactory;
pub use manager::UserManager;
pub use model::{
    App, AppStats, CreateUserData, Email, Page, Session, SessionData, SessionMetadata, Ttl,
    UpdateUserData, User, UserId, UserName,
};
pub use store::{
    MemoryStore, PostgresStore, RedisSessionCache, SqliteStore, Store, TieredOptions, TieredStore,
};
pub use token::{SessionId, SessionToken};

/// The seed's `UserManagerInterface`: in Rust, the one [`UserManager`] type, whatever the store.
pub type UserManagerInterface = UserManager;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme_examples {}
