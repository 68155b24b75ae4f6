//! A TCP proxy that adds a fixed delay to every new connection and to every
//! request it forwards (the first bytes from the client after a response), so
//! that a route's latency grows by the delay once per sequential backend
//! round trip. Used by the benchmarks, in front of a keep-alive moto.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct DelayProxy {
    pub url: String,
    /// Requests forwarded so far.
    pub requests: Arc<AtomicU64>,
}

impl DelayProxy {
    pub async fn start(upstream: &str, delay: Duration) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counter) = (upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    pipe(client, server, delay, &counter).await;
                });
            }
        });
        Self { url, requests }
    }
}

async fn pipe(client: TcpStream, server: TcpStream, delay: Duration, requests: &AtomicU64) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Set when a response has flowed back: the next client bytes start a new
    // request, and are held for `delay`.
    let new_request = Arc::new(AtomicBool::new(true));
    let flag = new_request.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if flag.swap(false, Ordering::SeqCst) {
                requests.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            new_request.store(true, Ordering::SeqCst);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}
