//! A TCP fault-injection proxy for integration tests.
//!
//! [`FaultProxy`] listens on `127.0.0.1:0` and forwards every connection to a target address (a
//! Redis or PostgreSQL server, say). A test points its client at [`FaultProxy::addr`] and then
//! breaks the network on demand: [`cut`](FaultProxy::cut) closes everything,
//! [`blackhole`](FaultProxy::blackhole) swallows all bytes, [`delay`](FaultProxy::delay) holds
//! every chunk back, and [`restore`](FaultProxy::restore) forwards normally again.
//!
//! The file depends on tokio only, so any test crate can include it with
//! `#[path = "support/fault_proxy.rs"] mod fault_proxy;`.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Size of the read buffer of each direction of each connection.
const CHUNK: usize = 16 * 1024;

/// What the proxy currently does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Normal,
    /// Refuse everything: open connections were closed, new ones are closed as soon as accepted.
    Cut,
    /// Keep connections open but forward nothing; bytes read are thrown away.
    Blackhole,
    /// Forward everything, each chunk no earlier than this long after it was read.
    Delay(Duration),
}

/// The mode plus the generation of connections that may stay open.
///
/// A connection remembers the generation it was accepted in and closes as soon as the generation
/// moves on.
#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    generation: u64,
}

/// Shared by every clone of a [`FaultProxy`]; dropping the last clone stops everything.
#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    state: watch::Sender<State>,
    connections: Arc<AtomicUsize>,
    accept_task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task; the
        // watch sender going away also wakes and ends every copy loop.
        self.accept_task.abort();
    }
}

/// A TCP proxy between test clients and one server that can cut, blackhole or delay traffic.
///
/// Cheap to clone; all clones control the same proxy. When the last clone is dropped the listener
/// and every proxied connection are closed.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    inner: Arc<Inner>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` that forwards each accepted connection to `target`.
    ///
    /// Must be called inside a tokio runtime. The target is only connected to when a client
    /// connects, so it need not be up yet.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (state, state_rx) = watch::channel(State {
            mode: Mode::Normal,
            generation: 0,
        });
        let connections = Arc::new(AtomicUsize::new(0));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            target,
            state_rx,
            Arc::clone(&connections),
        ));
        Ok(FaultProxy {
            inner: Arc::new(Inner {
                addr,
                state,
                connections,
                accept_task,
            }),
        })
    }

    /// The address clients connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Closes every open connection now (both the client and the server side) and closes new
    /// connections as soon as they are accepted, until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.inner.state.send_modify(|s| {
            s.mode = Mode::Cut;
            s.generation += 1;
        });
    }

    /// Keeps connections open but forwards nothing in either direction: bytes are read and thrown
    /// away, not buffered. New connections are accepted but never reach the target and get
    /// nothing back. Lasts until the mode changes; leaving blackhole mode closes every connection
    /// that was open during it, so clients reconnect with a clean protocol state.
    pub fn blackhole(&self) {
        self.set_mode(Mode::Blackhole);
    }

    /// Forwards everything, each chunk held back by `d` after it was read, on existing and new
    /// connections alike. A round trip through the proxy therefore takes at least `2 * d`.
    pub fn delay(&self, d: Duration) {
        self.set_mode(Mode::Delay(d));
    }

    /// Forwards normally again. Connections closed by [`cut`](Self::cut) stay closed; connections
    /// open during [`blackhole`](Self::blackhole) are closed now; delayed connections carry on
    /// without delay.
    pub fn restore(&self) {
        self.set_mode(Mode::Normal);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.inner.state.borrow().mode
    }

    /// The number of connections the proxy currently holds open (including blackholed ones).
    ///
    /// Closing is asynchronous: right after [`cut`](Self::cut) or a client disconnect the count
    /// may lag for a moment.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    fn set_mode(&self, mode: Mode) {
        self.inner.state.send_modify(|s| {
            if s.mode == Mode::Blackhole && mode != Mode::Blackhole {
                s.generation += 1;
            }
            s.mode = mode;
        });
    }
}

/// Counts one open connection for as long as it lives (also when its task is aborted).
struct ConnectionGuard(Arc<AtomicUsize>);

impl ConnectionGuard {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(Arc::clone(count))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    state: watch::Receiver<State>,
    connections: Arc<AtomicUsize>,
) {
    // Owned here so that aborting this task aborts every connection task too.
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let current = *state.borrow();
                match current.mode {
                    Mode::Cut => drop(stream),
                    Mode::Blackhole => {
                        let guard = ConnectionGuard::new(&connections);
                        tasks.spawn(sink(stream, state.clone(), current.generation, guard));
                    }
                    Mode::Normal | Mode::Delay(_) => {
                        let guard = ConnectionGuard::new(&connections);
                        tasks.spawn(proxy_connection(
                            stream,
                            target,
                            state.clone(),
                            current.generation,
                            guard,
                        ));
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// True when the connection of `generation` must close (cut, blackhole left, or proxy dropped).
fn must_close(
    changed: Result<(), watch::error::RecvError>,
    state: &watch::Receiver<State>,
    generation: u64,
) -> bool {
    changed.is_err() || state.borrow().generation != generation
}

/// A connection accepted in blackhole mode: read and discard until it must close.
async fn sink(
    mut client: TcpStream,
    mut state: watch::Receiver<State>,
    generation: u64,
    _guard: ConnectionGuard,
) {
    let mut buf = vec![0u8; CHUNK];
    if state.borrow_and_update().generation != generation {
        return;
    }
    loop {
        tokio::select! {
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            changed = state.changed() => {
                if must_close(changed, &state, generation) {
                    return;
                }
            }
        }
    }
}

async fn proxy_connection(
    client: TcpStream,
    target: SocketAddr,
    mut state: watch::Receiver<State>,
    generation: u64,
    _guard: ConnectionGuard,
) {
    let upstream = tokio::select! {
        connected = TcpStream::connect(target) => match connected {
            Ok(upstream) => upstream,
            Err(_) => return,
        },
        () = async {
            while !must_close(state.changed().await, &state, generation) {}
        } => return,
    };
    let _ = upstream.set_nodelay(true);
    if state.borrow_and_update().generation != generation {
        return;
    }

    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let up = pump(client_read, upstream_write, state.clone(), generation);
    let down = pump(upstream_read, client_write, state, generation);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            end = &mut up, if !up_done => {
                if end == End::Close {
                    return;
                }
                up_done = true;
            }
            end = &mut down, if !down_done => {
                if end == End::Close {
                    return;
                }
                down_done = true;
            }
        }
    }
}

/// How one direction of a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The reading side sent EOF, which was passed on; the other direction may carry on.
    Eof,
    /// The whole connection must close (error, cut, blackhole left, or proxy dropped).
    Close,
}

/// Copies one direction of a connection, obeying the current mode for every chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    generation: u64,
) -> End {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) => {
                    let _ = to.shutdown().await;
                    return End::Eof;
                }
                Ok(n) => n,
                Err(_) => return End::Close,
            },
            changed = state.changed() => {
                if must_close(changed, &state, generation) {
                    return End::Close;
                }
                continue;
            }
        };
        let read_at = Instant::now();
        loop {
            let current = *state.borrow_and_update();
            if current.generation != generation {
                return End::Close;
            }
            match current.mode {
                Mode::Cut => return End::Close,
                Mode::Blackhole => break,
                Mode::Normal => {
                    if !write_chunk(&mut to, &buf[..n], &mut state, generation).await {
                        return End::Close;
                    }
                    break;
                }
                Mode::Delay(d) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(read_at + d) => {
                            if !write_chunk(&mut to, &buf[..n], &mut state, generation).await {
                                return End::Close;
                            }
                            break;
                        }
                        changed = state.changed() => {
                            if changed.is_err() {
                                return End::Close;
                            }
                            // Re-evaluate the chunk under the new mode.
                        }
                    }
                }
            }
        }
    }
}

/// Writes `data` unless the connection must close first; returns false when it must close.
async fn write_chunk(
    to: &mut OwnedWriteHalf,
    data: &[u8],
    state: &mut watch::Receiver<State>,
    generation: u64,
) -> bool {
    let mut written = 0;
    while written < data.len() {
        tokio::select! {
            wrote = to.write(&data[written..]) => match wrote {
                Ok(0) | Err(_) => return false,
                Ok(n) => written += n,
            },
            changed = state.changed() => {
                if must_close(changed, state, generation) {
                    return false;
                }
                if state.borrow().mode == Mode::Blackhole {
                    // Swallow the rest of the chunk.
                    return true;
                }
            }
        }
    }
    true
}
