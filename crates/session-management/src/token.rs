//! Session tokens (the secret a client holds) and session ids (the public handle derived from them).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Number of random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Length of a token once encoded (base64url, no padding).
const TOKEN_CHARS: usize = 43;

/// The secret a client presents to prove its session: 32 bytes from the OS CSPRNG, base64url without padding.
///
/// It is returned once, at creation or rotation, and never stored: stores keep only its [`SessionId`].
/// `Debug` and `Display` print a redaction; [`SessionToken::expose_secret`] is the only way to read it.
/// The encoded secret is wiped from memory when the token is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// Draws a new token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|err| Error::Internal {
            context: "OS random number generator",
            source: Box::new(std::io::Error::other(err.to_string())),
        })?;
        Ok(Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))))
    }

    /// Parses a token presented by a client. Anything but 43 base64url characters encoding 32 bytes is
    /// [`Error::InvalidInput`] on the field `token`; the rejected value is never echoed.
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.len() != TOKEN_CHARS {
            return Err(Error::invalid("token", "must be 43 base64url characters"));
        }
        let decoded = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(raw)
                .map_err(|_| Error::invalid("token", "must be 43 base64url characters"))?,
        );
        if decoded.len() != TOKEN_BYTES {
            return Err(Error::invalid("token", "must encode 32 bytes"));
        }
        Ok(Self(Zeroizing::new(raw.to_owned())))
    }

    /// The secret itself, for handing to the client. Treat the result like a password.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The public id of the session this token belongs to.
    pub fn id(&self) -> SessionId {
        SessionId(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted session token>")
    }
}

/// The public handle of a session: the SHA-256 of its token, shown as 64 lowercase hex characters.
///
/// Stored, listed and used to revoke; knowing it does not let anyone act as the user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// Parses the 64-character hex form. Anything else is [`Error::InvalidInput`] on `session_id`.
    pub fn parse(raw: &str) -> Result<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(raw.trim(), &mut bytes)
            .map_err(|_| Error::invalid("session_id", "must be 64 hex characters"))?;
        Ok(Self(bytes))
    }

    /// Rebuilds an id from its raw 32 bytes (as kept by the stores).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_chars_and_distinct() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_eq!(a.expose_secret().len(), TOKEN_CHARS);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn debug_and_display_never_print_the_secret() {
        let token = SessionToken::generate().unwrap();
        let secret = token.expose_secret().to_owned();
        assert!(!format!("{token:?}").contains(&secret));
        assert!(!format!("{token}").contains(&secret));
        assert!(!format!("{:?}", Some(&token)).contains(&secret));
    }

    #[test]
    fn parse_round_trips_and_id_is_sha256_of_the_token() {
        let token = SessionToken::generate().unwrap();
        let parsed = SessionToken::parse(token.expose_secret()).unwrap();
        assert_eq!(parsed.id(), token.id());
        let expected: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
        assert_eq!(token.id().as_bytes(), &expected);
    }

    #[test]
    fn malformed_tokens_are_invalid_input_on_token() {
        let long = "A".repeat(44);
        for bad in [
            "",
            "short",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            long.as_str(),
        ] {
            let err = SessionToken::parse(bad).unwrap_err();
            assert_eq!(err.field(), Some("token"), "{bad:?}");
            assert!(!err.to_string().contains(bad) || bad.is_empty());
        }
    }

    #[test]
    fn session_id_parses_its_own_display() {
        let id = SessionToken::generate().unwrap().id();
        assert_eq!(SessionId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(id.to_string().len(), 64);
        assert_eq!(
            SessionId::parse("zz").unwrap_err().field(),
            Some("session_id")
        );
    }
}
