//! The connection cap, without a management cluster (`/healthz` needs none): beyond
//! `max_connections` a client waits until a connection closes — here two idle connections, cut
//! off by the header timeout.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let upstream = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let mut settings = kaas_server::Settings::from_kube_config(upstream);
    settings.max_connections = 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(kaas_server::serve(
        listener,
        kaas_server::AppState::new(settings),
        None,
        std::future::pending(),
    ));
    let healthz = || async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(healthz().await.starts_with("HTTP/1.1 200"));
    // Two idle connections take both slots.
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let third = tokio::time::timeout(Duration::from_secs(30), healthz())
        .await
        .expect("answered once an idle connection is cut off");
    let waited = start.elapsed();
    println!("third client answered after {:.1} s", waited.as_secs_f64());
    assert!(third.starts_with("HTTP/1.1 200"), "{third}");
    assert!(
        waited >= kaas_server::HEADER_TIMEOUT - Duration::from_secs(1),
        "the third client waited for a slot: {waited:?}"
    );
}
