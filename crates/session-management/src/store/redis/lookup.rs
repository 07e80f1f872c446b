//! The hot path's `MGET`s, each written and read by the task that leads its batch, on connections of
//! their own.
//!
//! Why not the multiplexed connection that serves every other command: its driver task stands
//! between the caller and the socket, so each batch is handed to it and its reply handed back, two
//! task wake-ups per round trip, often across worker threads. On the 2-core bench machine that cost
//! about a fifth of validate throughput (see BENCHMARKS.md). Everything else about the connection is
//! still the `redis` crate's: the URL parsing and the command encoding. The reply reader below
//! accepts just what `MGET` answers (an array of bulk strings and nils, or an error) and refuses
//! anything else.
//!
//! A connection is taken from the idle list for one round trip and put back only after a complete
//! reply: one that failed, timed out, or whose caller was cancelled with its reply still due, is
//! dropped, never reused. So there are at most as many connections as batches in flight, opened on
//! demand. A lookup whose idle connection turns out to have been closed meanwhile (a Redis restart,
//! an idle timeout) tries once more on a new one, within the same timeout.

use std::io;
use std::ops::Range;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Connections for `MGET` lookups. Not `Debug`: the handshake holds the password.
pub(super) struct Lookups {
    host: String,
    port: u16,
    /// `AUTH` and `SELECT` as the URL asks, packed once, and how many replies they get.
    handshake: (Vec<u8>, usize),
    /// Longest a lookup takes, connecting included.
    timeout: Duration,
    idle: std::sync::Mutex<Vec<Connection>>,
}

struct Connection {
    io: TcpStream,
    /// The reply being read; its capacity is kept between round trips.
    buf: Vec<u8>,
    /// Where each value of the reply lies in `buf`.
    values: Vec<Option<Range<usize>>>,
}

/// Spare room made in the buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// A buffer that grew past this for a large reply is shrunk back afterwards.
const KEEP_BUFFER: usize = 256 * 1024;
/// Longest header line (`*128`, `$4096`, or an error message) accepted.
const MAX_LINE: usize = 4096;

impl Lookups {
    /// `None` for addresses other than plain TCP (`redis://`).
    pub(super) fn new(info: &ConnectionInfo, timeout: Duration) -> Option<Self> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        let mut handshake = (Vec::new(), 0);
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(username) = settings.username() {
                auth.arg(username);
            }
            auth.arg(password).write_packed_command(&mut handshake.0);
            handshake.1 += 1;
        }
        if settings.db() != 0 {
            redis::cmd("SELECT")
                .arg(settings.db())
                .write_packed_command(&mut handshake.0);
            handshake.1 += 1;
        }
        Some(Self {
            host: host.clone(),
            port: *port,
            handshake,
            timeout,
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The values of `keys`, in order (`None` where a key does not exist).
    pub(super) async fn mget(&self, keys: &[Vec<u8>]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let mut command = Vec::with_capacity(16 + keys.iter().map(|k| k.len() + 16).sum::<usize>());
        redis::cmd("MGET")
            .arg(keys)
            .write_packed_command(&mut command);
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        // Connecting included, one lookup takes at most `timeout`. The connection is dropped on an
        // error, a timeout or a cancellation: its stream may still carry the reply.
        let (conn, values) = tokio::time::timeout(self.timeout, async {
            if let Some(mut conn) = idle {
                match conn.round_trip(&command, keys.len()).await {
                    Ok(values) => return Ok((conn, values)),
                    // Closed while idle (a Redis restart, an idle timeout, the network): one more
                    // try on a new connection. A read is safe to repeat.
                    Err(err) if closed(&err) => {}
                    Err(err) => return Err(err),
                }
            }
            let mut conn = self.connect().await?;
            let values = conn.round_trip(&command, keys.len()).await?;
            Ok::<_, io::Error>((conn, values))
        })
        .await
        .map_err(|_| {
            let message = format!("Redis did not answer within {:?}", self.timeout);
            io::Error::new(io::ErrorKind::TimedOut, message)
        })??;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        Ok(values)
    }

    async fn connect(&self) -> io::Result<Connection> {
        let io = TcpStream::connect((self.host.as_str(), self.port)).await?;
        io.set_nodelay(true)?;
        let mut conn = Connection {
            io,
            buf: Vec::with_capacity(READ_CHUNK),
            values: Vec::new(),
        };
        let (command, replies) = &self.handshake;
        if *replies > 0 {
            conn.io.write_all(command).await?;
            for _ in 0..*replies {
                conn.read_ok().await?;
            }
        }
        Ok(conn)
    }
}

/// The connection was closed under us.
fn closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from Redis: {what}"),
    )
}

/// Redis answered with an error (`-ERR …`, `-NOAUTH …`, `-LOADING …`).
fn server_error(line: &[u8]) -> io::Error {
    io::Error::other(format!(
        "Redis replied with an error: {}",
        String::from_utf8_lossy(line)
    ))
}

impl Connection {
    /// Reads more of the reply into `buf`; a closed connection is an error.
    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(READ_CHUNK);
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        Ok(())
    }

    /// Sends `command` and reads its `MGET` reply for `count` keys.
    async fn round_trip(
        &mut self,
        command: &[u8],
        count: usize,
    ) -> io::Result<Vec<Option<Vec<u8>>>> {
        self.io.write_all(command).await?;
        self.buf.clear();
        loop {
            if let Some(end) = parse_mget(&self.buf, count, &mut self.values)? {
                if end != self.buf.len() {
                    return Err(protocol_error("bytes after the reply"));
                }
                break;
            }
            self.fill().await?;
        }
        let values = self
            .values
            .iter()
            .map(|range| range.clone().map(|r| self.buf[r].to_vec()))
            .collect();
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::with_capacity(READ_CHUNK);
        }
        Ok(values)
    }

    /// Reads one `+OK` (a handshake reply); the replies after it may already be in `buf`.
    async fn read_ok(&mut self) -> io::Result<()> {
        loop {
            if let Some((line, end)) = line_at(&self.buf, 0)? {
                let result = match line.first() {
                    Some(b'+') => Ok(()),
                    Some(b'-') => Err(server_error(&line[1..])),
                    _ => Err(protocol_error("expected +OK")),
                };
                self.buf.drain(..end);
                return result;
            }
            self.fill().await?;
        }
    }
}

/// The line starting at `at` (without its CRLF) and where the next one starts; `None` if it has not
/// all arrived.
fn line_at(buf: &[u8], at: usize) -> io::Result<Option<(&[u8], usize)>> {
    let rest = &buf[at.min(buf.len())..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(len) if len <= MAX_LINE => Ok(Some((&rest[..len], at + len + 2))),
        Some(_) => Err(protocol_error("a line too long")),
        None if rest.len() > MAX_LINE => Err(protocol_error("a line too long")),
        None => Ok(None),
    }
}

fn integer(digits: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol_error("a malformed length"))
}

/// Parses an `MGET` reply for `count` keys from the start of `buf`, recording where each value lies
/// in `values`. Returns where the reply ends, or `None` if it has not all arrived.
fn parse_mget(
    buf: &[u8],
    count: usize,
    values: &mut Vec<Option<Range<usize>>>,
) -> io::Result<Option<usize>> {
    values.clear();
    let Some((head, mut at)) = line_at(buf, 0)? else {
        return Ok(None);
    };
    match head.split_first() {
        Some((b'*', len)) if integer(len)? == count as i64 => {}
        Some((b'-', message)) => return Err(server_error(message)),
        _ => return Err(protocol_error("not an array of the keys' length")),
    }
    for _ in 0..count {
        let Some((head, next)) = line_at(buf, at)? else {
            return Ok(None);
        };
        match head.split_first() {
            // RESP2's nil, and RESP3's.
            Some((b'$', b"-1")) | Some((b'_', b"")) => {
                values.push(None);
                at = next;
            }
            Some((b'$', len)) => {
                let len = usize::try_from(integer(len)?)
                    .map_err(|_| protocol_error("a negative length"))?;
                let end = next + len;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(protocol_error("a value without its CRLF"));
                }
                values.push(Some(next..end));
                at = end + 2;
            }
            _ => return Err(protocol_error("not a string or nil in the array")),
        }
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8], count: usize) -> io::Result<Option<Vec<Option<Vec<u8>>>>> {
        let mut values = Vec::new();
        Ok(parse_mget(buf, count, &mut values)?.map(|end| {
            assert_eq!(end, buf.len(), "the reply ends where the input does");
            values
                .into_iter()
                .map(|r| r.map(|r| buf[r].to_vec()))
                .collect()
        }))
    }

    const REPLY: &[u8] = b"*3\r\n$5\r\nhel\r\n\r\n$-1\r\n$0\r\n\r\n";

    #[test]
    fn a_reply_with_values_and_nils_is_read_in_order() {
        let values = parse(REPLY, 3).unwrap().unwrap();
        assert_eq!(
            values,
            vec![Some(b"hel\r\n".to_vec()), None, Some(Vec::new())]
        );
        assert_eq!(
            parse(b"*2\r\n_\r\n$1\r\nx\r\n", 2).unwrap().unwrap(),
            vec![None, Some(b"x".to_vec())],
            "RESP3 nil"
        );
    }

    #[test]
    fn a_reply_cut_anywhere_waits_for_more() {
        for cut in 0..REPLY.len() {
            assert!(
                parse(&REPLY[..cut], 3).unwrap().is_none(),
                "cut at {cut} was taken as complete"
            );
        }
    }

    #[test]
    fn errors_and_malformed_replies_are_refused() {
        let err = parse(b"-NOAUTH Authentication required.\r\n", 1).unwrap_err();
        assert!(err.to_string().contains("NOAUTH"), "{err}");
        for bad in [
            &b"*2\r\n$1\r\nx\r\n"[..], // another length than the keys'
            b"+OK\r\n",                // not an array
            b"*1\r\n:1\r\n",           // an integer in the array
            b"*1\r\n$x\r\n",           // a malformed length
            b"*1\r\n$-2\r\n",          // a negative length
            b"*1\r\n$1\r\nxy\r\n",     // a value longer than announced
        ] {
            assert!(parse(bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let endless = [b'*'; MAX_LINE + 1];
        assert!(parse(&endless, 1).is_err(), "a header without an end");
    }
}
