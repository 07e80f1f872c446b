//! Tests of the TCP fault-injection proxy that the fault tests share, against a local echo server.

mod support {
    //! Helpers shared by integration tests.
    pub mod fault_proxy;
}

use std::net::SocketAddr;
use std::time::Duration;

use support::fault_proxy::{FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Generous bound for things that should happen at once.
const SOON: Duration = Duration::from_secs(1);

/// Starts an echo server on 127.0.0.1:0 and returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn proxy() -> FaultProxy {
    FaultProxy::start(echo_server().await).await.unwrap()
}

/// Writes `msg` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    let (mut read, mut write) = stream.split();
    let mut buf = vec![0u8; msg.len()];
    // Write and read at once, so large messages cannot fill every buffer and stall.
    let (wrote, echoed) = timeout(SOON * 2, async {
        tokio::join!(write.write_all(msg), read.read_exact(&mut buf))
    })
    .await
    .expect("echo in time");
    wrote.unwrap();
    echoed.unwrap();
    buf
}

/// Asserts that the peer has closed the connection: a read sees EOF or an error, promptly.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match timeout(SOON, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("expected a closed connection, read {n} bytes"),
        Err(_) => panic!("expected a closed connection, it stayed open"),
    }
}

/// Asserts that nothing comes back within 200 ms.
async fn assert_silent(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    if let Ok(read) = timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
        panic!("expected silence, got {read:?}");
    }
}

/// Waits until the proxy reports `n` open connections.
async fn wait_for_connections(proxy: &FaultProxy, n: usize) {
    let deadline = Instant::now() + SOON;
    while proxy.connections() != n {
        assert!(
            Instant::now() < deadline,
            "expected {n} connections, have {}",
            proxy.connections()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn bytes_pass_through_and_connections_are_counted() {
    let proxy = proxy().await;
    assert_eq!(proxy.mode(), Mode::Normal);
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut a, b"hello").await, b"hello");
    assert_eq!(round_trip(&mut b, b"world").await, b"world");
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(round_trip(&mut a, &big).await, big);
    wait_for_connections(&proxy, 2).await;

    drop(a);
    wait_for_connections(&proxy, 1).await;
    // A half-close is passed on: the echo server ends and the connection closes.
    b.shutdown().await.unwrap();
    assert_closed(&mut b).await;
    wait_for_connections(&proxy, 0).await;
}

#[tokio::test]
async fn cut_closes_open_and_new_connections_until_restore() {
    let proxy = proxy().await;
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"before").await, b"before");

    proxy.cut();
    assert_closed(&mut open).await;
    wait_for_connections(&proxy, 0).await;
    // A new connection may be refused or accepted and closed at once; either way it carries nothing.
    if let Ok(mut fresh) = TcpStream::connect(proxy.addr()).await {
        assert_closed(&mut fresh).await;
    }
    assert_eq!(proxy.connections(), 0);

    proxy.restore();
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"after").await, b"after");
    // The connection cut earlier stays closed.
    assert_closed(&mut open).await;
}

#[tokio::test]
async fn blackhole_swallows_bytes_and_restore_closes_blackholed_connections() {
    let proxy = proxy().await;
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"before").await, b"before");

    proxy.blackhole();
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    open.write_all(b"lost").await.unwrap();
    fresh.write_all(b"lost too").await.unwrap();
    let ((), ()) = tokio::join!(assert_silent(&mut open), assert_silent(&mut fresh));
    wait_for_connections(&proxy, 2).await;

    proxy.restore();
    assert_closed(&mut open).await;
    assert_closed(&mut fresh).await;
    wait_for_connections(&proxy, 0).await;
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"after").await, b"after");
}

#[tokio::test]
async fn delay_holds_back_every_chunk_on_existing_and_new_connections() {
    let proxy = proxy().await;
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"warm").await, b"warm");

    proxy.delay(Duration::from_millis(300));
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    let started = Instant::now();
    let (old_echo, new_echo) = tokio::join!(
        round_trip(&mut open, b"slow"),
        round_trip(&mut fresh, b"slower"),
    );
    // Only a lower bound: each direction is held back by 300 ms.
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(old_echo, b"slow");
    assert_eq!(new_echo, b"slower");

    proxy.restore();
    assert_eq!(round_trip(&mut open, b"fast").await, b"fast");
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections_and_listener() {
    let proxy = proxy().await;
    let addr = proxy.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut open, b"hi").await, b"hi");

    drop(proxy);
    assert_closed(&mut open).await;
    // The listener is gone once the accept task has been aborted.
    let deadline = Instant::now() + SOON;
    loop {
        match TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(mut late) => {
                // Accepted by the kernel before the listener closed: it must not carry anything.
                assert_closed(&mut late).await;
            }
        }
        assert!(Instant::now() < deadline, "listener still accepting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
