//! The compact binary encoding of a cached session (not JSON): format, version, user id, times as
//! a millisecond timestamp plus varint deltas, TTL, IP, then length-prefixed user agent and data.
//! App and id are in the key. A 100-character user agent makes a record of about 150 bytes.

use std::net::IpAddr;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{
    App, Session, SessionData, SessionMetadata, Ttl, UserId, from_millis, to_millis,
};
use crate::token::SessionId;

/// First byte of every encoded session; bump when the layout changes.
const FORMAT: u8 = 2;

/// Encodes a session. The first 9 bytes are the format and the big-endian version, so the write
/// script can compare versions byte-wise.
pub(super) fn encode(session: &Session) -> Vec<u8> {
    let agent = session.metadata.user_agent().as_bytes();
    let data = if session.data.is_empty() {
        Vec::new()
    } else {
        session.data.to_json().into_bytes()
    };
    let mut out = Vec::with_capacity(48 + agent.len() + data.len());
    out.push(FORMAT);
    out.extend_from_slice(&session.version.to_be_bytes());
    out.extend_from_slice(session.user_id.as_uuid().as_bytes());
    let created = to_millis(session.created_at);
    out.extend_from_slice(&created.to_be_bytes());
    put_signed(&mut out, to_millis(session.expires_at) - created);
    put_signed(&mut out, to_millis(session.last_seen_at) - created);
    put_varint(&mut out, session.ttl.as_secs());
    match session.metadata.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    for field in [agent, data.as_slice()] {
        put_varint(&mut out, field.len() as u64);
        out.extend_from_slice(field);
    }
    out
}

/// LEB128.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Zigzag, then LEB128.
fn put_signed(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Reads pieces off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.array::<1>()?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn signed(&mut self) -> Result<i64> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

fn corrupt(what: &'static str) -> Error {
    Error::Internal {
        context: "redis session decoding",
        source: what.into(),
    }
}

/// Decodes what [`encode`] wrote; anything else is an internal error, never a panic.
pub(super) fn decode(app: &App, id: SessionId, raw: &[u8]) -> Result<Session> {
    let mut r = Reader(raw);
    if r.array::<1>()?[0] != FORMAT {
        return Err(corrupt("unknown format"));
    }
    let version = u64::from_be_bytes(r.array()?);
    let user_id = UserId::from_uuid(Uuid::from_bytes(r.array()?));
    let created = i64::from_be_bytes(r.array()?);
    let at = |delta: i64| {
        created
            .checked_add(delta)
            .ok_or_else(|| corrupt("time"))
            .and_then(from_millis)
    };
    let expires_at = at(r.signed()?)?;
    let last_seen_at = at(r.signed()?)?;
    let created_at = from_millis(created)?;
    let ttl = Ttl::from_secs(r.varint()?).map_err(|_| corrupt("ttl"))?;
    let ip = match r.array::<1>()?[0] {
        4 => IpAddr::from(r.array::<4>()?),
        6 => IpAddr::from(r.array::<16>()?),
        _ => return Err(corrupt("ip")),
    };
    let mut field = || -> Result<&[u8]> {
        let len = usize::try_from(r.varint()?).map_err(|_| corrupt("length"))?;
        r.take(len)
    };
    let agent = std::str::from_utf8(field()?).map_err(|_| corrupt("user agent"))?;
    let metadata = SessionMetadata::new(ip, agent).map_err(|_| corrupt("user agent"))?;
    let data = match field()? {
        [] => SessionData::default(),
        json => SessionData::from_json(std::str::from_utf8(json).map_err(|_| corrupt("data"))?)
            .map_err(|_| corrupt("data"))?,
    };
    Ok(Session {
        id,
        user_id,
        app: app.clone(),
        metadata,
        data,
        created_at,
        expires_at,
        last_seen_at,
        ttl,
        version,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::OffsetDateTime;

    use super::*;
    use crate::token::SessionToken;

    fn session(ip: &str, data: serde_json::Value) -> Session {
        let now = crate::model::truncate_to_millis(OffsetDateTime::now_utc());
        Session {
            id: SessionToken::generate().unwrap().id(),
            user_id: UserId::new_v7(),
            app: App::parse("web").unwrap(),
            metadata: SessionMetadata::parse(ip, &"Mozilla/5.0 ".repeat(8)).unwrap(),
            data: SessionData::parse(data).unwrap(),
            created_at: now,
            expires_at: now + Duration::from_secs(3600),
            last_seen_at: now,
            ttl: Ttl::from_secs(3600).unwrap(),
            version: 7,
        }
    }

    #[test]
    fn encoding_round_trips_v4_v6_and_data() {
        for s in [
            session("203.0.113.9", serde_json::json!({})),
            session("2001:db8::1", serde_json::json!({"cart": [1, 2], "é": "ü"})),
        ] {
            let raw = encode(&s);
            assert_eq!(decode(&s.app, s.id, &raw).unwrap(), s);
        }
    }

    #[test]
    fn encoding_is_compact_and_versions_compare_bytewise() {
        let mut s = session("203.0.113.9", serde_json::json!({}));
        let raw = encode(&s);
        assert!(
            raw.len() < 80 + s.metadata.user_agent().len(),
            "{} bytes",
            raw.len()
        );
        s.version = 8;
        assert!(encode(&s)[..9] > raw[..9]);
        s.version = 256;
        assert!(encode(&s)[..9] > raw[..9]);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_an_internal_error_not_a_panic() {
        let s = session("203.0.113.9", serde_json::json!({"a": 1}));
        let raw = encode(&s);
        for cut in 0..raw.len() {
            assert!(decode(&s.app, s.id, &raw[..cut]).is_err());
        }
        assert!(decode(&s.app, s.id, b"{\"json\": true}").is_err());
    }
}
