//! A fault-injecting proxy between the AWS adapters and moto. Each request
//! (moto closes every connection, so one connection carries one request) is
//! forwarded or hit by a fault drawn from a seeded generator:
//!
//! - `throttle`: answered 400 `ThrottlingException` without forwarding;
//! - `error_before`: answered 500 without forwarding;
//! - `error_after`: forwarded (so it takes effect), then answered 500;
//! - `slow`: forwarded, answered only after `slow_by` (past the SDK's
//!   attempt timeout);
//! - `drop_before` / `drop_after`: the connection is closed without an
//!   answer, before or after forwarding.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub throttle: f64,
    pub error_before: f64,
    pub error_after: f64,
    pub slow: f64,
    pub drop_before: f64,
    pub drop_after: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Throttle,
    ErrorBefore,
    ErrorAfter,
    Slow,
    DropBefore,
    DropAfter,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub throttle: AtomicU64,
    pub error_before: AtomicU64,
    pub error_after: AtomicU64,
    pub slow: AtomicU64,
    pub drop_before: AtomicU64,
    pub drop_after: AtomicU64,
}

impl Counts {
    pub fn injected(&self) -> u64 {
        [&self.throttle, &self.error_before, &self.error_after, &self.slow, &self.drop_before, &self.drop_after]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

pub struct FaultProxy {
    pub url: String,
    pub counts: Arc<Counts>,
    enabled: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, rates: Rates, seed: u64, slow_by: Duration) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let enabled = Arc::new(AtomicBool::new(true));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let (c, e) = (counts.clone(), enabled.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let fault =
                    if e.load(Ordering::Relaxed) { draw(&mut rng.lock().unwrap(), &rates) } else { Fault::None };
                let (c, upstream) = (c.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, fault, slow_by, &c).await;
                });
            }
        });
        Self { url, counts, enabled }
    }

    /// Stops injecting faults (to check the state afterwards).
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }
}

fn draw(rng: &mut StdRng, r: &Rates) -> Fault {
    let x: f64 = rng.gen();
    let table = [
        (r.throttle, Fault::Throttle),
        (r.error_before, Fault::ErrorBefore),
        (r.error_after, Fault::ErrorAfter),
        (r.slow, Fault::Slow),
        (r.drop_before, Fault::DropBefore),
        (r.drop_after, Fault::DropAfter),
    ];
    let mut acc = 0.0;
    for (p, f) in table {
        acc += p;
        if x < acc {
            return f;
        }
    }
    Fault::None
}

/// Reads one HTTP/1.1 request (head and Content-Length body).
async fn read_request(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(buf);
        }
    }
}

fn error_response(status: u16, kms: bool) -> Vec<u8> {
    let (reason, ty) = match status {
        400 => (
            "Bad Request",
            if kms { "ThrottlingException" } else { "com.amazonaws.dynamodb.v20120810#ThrottlingException" },
        ),
        _ => (
            "Internal Server Error",
            if kms { "KMSInternalException" } else { "com.amazonaws.dynamodb.v20120810#InternalServerError" },
        ),
    };
    let body = format!("{{\"__type\":\"{ty}\",\"message\":\"injected fault\"}}");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-errortype: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        ty.rsplit('#').next().unwrap(),
        body.len()
    )
    .into_bytes()
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: Fault,
    slow_by: Duration,
    c: &Counts,
) -> std::io::Result<()> {
    let request = read_request(&mut client).await?;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let kms = String::from_utf8_lossy(&request).contains("TrentService");
    let counter = match fault {
        Fault::None => None,
        Fault::Throttle => Some(&c.throttle),
        Fault::ErrorBefore => Some(&c.error_before),
        Fault::ErrorAfter => Some(&c.error_after),
        Fault::Slow => Some(&c.slow),
        Fault::DropBefore => Some(&c.drop_before),
        Fault::DropAfter => Some(&c.drop_after),
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        Fault::Throttle => return client.write_all(&error_response(400, kms)).await,
        Fault::ErrorBefore => return client.write_all(&error_response(500, kms)).await,
        Fault::DropBefore => return Ok(()),
        _ => {}
    }
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&request).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    match fault {
        Fault::ErrorAfter => client.write_all(&error_response(500, kms)).await,
        Fault::DropAfter => Ok(()),
        Fault::Slow => {
            tokio::time::sleep(slow_by).await;
            client.write_all(&response).await
        }
        _ => client.write_all(&response).await,
    }
}
