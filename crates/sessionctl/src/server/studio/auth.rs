//! The studio's login: a signed cookie (never the API key), the CSRF token every form carries,
//! and the same-origin check on every POST. All are keyed by the per-process `studio_secret`, so a
//! restart logs everyone out.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::StudioError;
use crate::server::state::AppState;

/// Name of the studio's session cookie.
pub const COOKIE_NAME: &str = "sm_studio";
/// How long a studio login lasts.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Random bytes in a session nonce.
const NONCE_LEN: usize = 16;

/// A valid studio login, read from the `sm_studio` cookie. As an extractor it sends anyone without
/// one to `/studio/login` (303).
#[derive(Clone, Debug)]
pub struct StudioSession {
    expires: u64,
    nonce: String,
}

impl StudioSession {
    /// A new login valid for [`LIFETIME`] from `now` (Unix seconds), as its cookie value:
    /// `<expiry>.<nonce hex>.<HMAC-SHA256 hex of "expiry.nonce">`.
    pub fn issue(secret: &[u8; 32], now: u64) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random number generator works");
        let payload = format!("{}.{}", now + LIFETIME.as_secs(), hex::encode(nonce));
        let mac = hex::encode(sign(secret, payload.as_bytes()));
        format!("{payload}.{mac}")
    }

    /// The login a cookie value stands for, if its signature holds, it has not expired at `now`
    /// and it was not logged out.
    pub fn verify(secret: &[u8; 32], value: &str, now: u64) -> Option<Self> {
        let (payload, mac_hex) = value.rsplit_once('.')?;
        let (expires, nonce) = payload.split_once('.')?;
        let mut mac = [0u8; 32];
        hex::decode_to_slice(mac_hex, &mut mac).ok()?;
        if !bool::from(sign(secret, payload.as_bytes()).ct_eq(&mac)) {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        if expires <= now || logged_out().contains_key(nonce) {
            return None;
        }
        Some(Self {
            expires,
            nonce: nonce.to_owned(),
        })
    }

    /// The login carried by a request's cookies, if any is valid.
    pub fn from_headers(secret: &[u8; 32], headers: &HeaderMap, now: u64) -> Option<Self> {
        cookie_values(headers).find_map(|value| Self::verify(secret, value, now))
    }

    /// The CSRF token of this login: HMAC of its nonce, so it is worthless without the cookie.
    pub fn csrf_token(&self, secret: &[u8; 32]) -> String {
        hex::encode(self.csrf_mac(secret))
    }

    /// Whether `presented` is this login's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, secret: &[u8; 32], presented: &str) -> bool {
        let mut mac = [0u8; 32];
        if hex::decode_to_slice(presented.trim(), &mut mac).is_err() {
            return false;
        }
        self.csrf_mac(secret).ct_eq(&mac).into()
    }

    /// Ends this login before its expiry: the cookie stops working even if a copy survives.
    pub fn end(&self) {
        let now = now_secs();
        let mut ended = logged_out();
        ended.retain(|_, expires| *expires > now);
        ended.insert(self.nonce.clone(), self.expires);
    }

    fn csrf_mac(&self, secret: &[u8; 32]) -> [u8; 32] {
        // The prefix keeps CSRF tokens and cookie signatures apart: one is never the other.
        sign(secret, format!("csrf:{}", self.nonce).as_bytes())
    }
}

impl FromRequestParts<AppState> for StudioSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Self::from_headers(state.studio_secret(), &parts.headers, now_secs())
            .ok_or_else(|| to_login(&parts.headers))
    }
}

/// Passes when a POST comes from the studio's own pages: its `Origin`, when sent, names the host the
/// request was sent to, and the browser does not call it cross-site. Otherwise 403.
#[derive(Clone, Copy, Debug)]
pub struct SameOrigin;

impl<S: Send + Sync> FromRequestParts<S> for SameOrigin {
    type Rejection = StudioError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, StudioError> {
        if is_same_origin(parts) {
            Ok(Self)
        } else {
            tracing::warn!("studio: cross-origin POST refused");
            Err(StudioError::forbidden(
                "this form was sent from another site",
            ))
        }
    }
}

fn is_same_origin(parts: &Parts) -> bool {
    let headers = &parts.headers;
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| parts.uri.authority().map(|authority| authority.as_str()));
    let authority = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// The `Set-Cookie` value that stores a login. `Secure` is added when the request came over HTTPS
/// through a proxy that says so; plain-HTTP development keeps working without it.
pub fn session_cookie(value: &str, headers: &HeaderMap) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE_NAME}={value}; Path=/studio; Max-Age={}; HttpOnly; SameSite=Strict{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" },
    );
    HeaderValue::from_str(&cookie).expect("the cookie is ASCII")
}

/// The `Set-Cookie` value that removes the login cookie.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("sm_studio=; Path=/studio; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// 303 to the login page, dropping a cookie that no longer works.
fn to_login(headers: &HeaderMap) -> Response {
    let mut response = Redirect::to("/studio/login").into_response();
    if cookie_values(headers).next().is_some() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cleared_cookie());
    }
    response
}

fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

fn sign(secret: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Nonces of logins ended by logout, until they would have expired anyway.
fn logged_out() -> std::sync::MutexGuard<'static, HashMap<String, u64>> {
    static ENDED: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    ENDED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    #[test]
    fn a_fresh_cookie_verifies_until_it_expires() {
        let value = StudioSession::issue(&SECRET, 1_000);
        assert!(StudioSession::verify(&SECRET, &value, 1_000).is_some());
        let expiry = 1_000 + LIFETIME.as_secs();
        assert!(StudioSession::verify(&SECRET, &value, expiry - 1).is_some());
        assert!(StudioSession::verify(&SECRET, &value, expiry).is_none());
    }

    #[test]
    fn a_cookie_signed_with_another_secret_or_edited_is_refused() {
        let value = StudioSession::issue(&SECRET, 1_000);
        assert!(StudioSession::verify(&[8; 32], &value, 1_000).is_none());
        let later = value.replacen(&(1_000 + LIFETIME.as_secs()).to_string(), "99999999999", 1);
        assert!(StudioSession::verify(&SECRET, &later, 1_000).is_none());
        assert!(StudioSession::verify(&SECRET, "", 1_000).is_none());
        assert!(StudioSession::verify(&SECRET, "1.2.3", 1_000).is_none());
    }

    #[test]
    fn csrf_tokens_belong_to_one_login() {
        let a = StudioSession::verify(&SECRET, &StudioSession::issue(&SECRET, 1), 1).unwrap();
        let b = StudioSession::verify(&SECRET, &StudioSession::issue(&SECRET, 1), 1).unwrap();
        assert!(a.csrf_matches(&SECRET, &a.csrf_token(&SECRET)));
        assert!(!a.csrf_matches(&SECRET, &b.csrf_token(&SECRET)));
        assert!(!a.csrf_matches(&SECRET, ""));
        assert!(!a.csrf_matches(&SECRET, "zz"));
    }

    #[test]
    fn an_ended_login_no_longer_verifies() {
        let now = now_secs();
        let value = StudioSession::issue(&SECRET, now);
        let session = StudioSession::verify(&SECRET, &value, now).unwrap();
        session.end();
        assert!(StudioSession::verify(&SECRET, &value, now).is_none());
    }
}
