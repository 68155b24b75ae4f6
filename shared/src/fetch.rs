//! Outbound HTTPS to other services (an OpenID issuer's discovery document
//! and JWKS, AWS STS for the IAM exchange, GitHub's public keys), under one
//! policy: HTTPS only (plain HTTP to a loopback address only where the
//! policy allows it, for `ibyok dev` and the tests), no redirect followed
//! (a 3xx is an answer like any other, which callers refuse), a time limit
//! on the whole exchange and a size limit on the body read.
//!
//! One client per process, made on first use (TLS roots from the system,
//! aws-lc-rs as the provider, as the AWS SDK's own client), so that a
//! function that never calls out pays nothing at start.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What an outbound request may do.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Plain `http://` to `127.0.0.1`, `[::1]` or `localhost` (never in a
    /// deployment).
    pub allow_loopback_http: bool,
    /// Body bytes read at most; a longer body is [`FetchError::TooLarge`].
    pub max_bytes: usize,
    /// The whole exchange, connection and body included.
    pub timeout: Duration,
}

impl Policy {
    /// HTTPS only, 256 KiB, 5 seconds.
    pub const DEPLOYED: Policy =
        Policy { allow_loopback_http: false, max_bytes: 256 * 1024, timeout: Duration::from_secs(5) };

    pub fn with_loopback_http(self, allow: bool) -> Self {
        Self { allow_loopback_http: allow, ..self }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one the policy allows (its scheme, its host, a user
    /// name in it), or does not parse.
    #[error("URL not allowed: {0}")]
    NotAllowed(&'static str),
    #[error("request failed: {0}")]
    Failed(String),
    #[error("no answer within the time limit")]
    Timeout,
    #[error("answer larger than the limit")]
    TooLarge,
}

/// An answer, whatever its status.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> &'static HttpsClient {
    static CLIENT: OnceLock<HttpsClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        // Certificates the system cannot parse are skipped; none loaded
        // means every HTTPS request fails its handshake, which callers see.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let connector = match tls {
            Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls),
            // The provider's defaults always include a protocol version.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        }
        .https_or_http()
        .enable_http1()
        .build();
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
    })
}

/// Whether `url` may be requested under `policy`.
pub fn check_url(url: &str, policy: &Policy) -> Result<hyper::Uri, FetchError> {
    let uri: hyper::Uri = url.parse().map_err(|_| FetchError::NotAllowed("not a URL"))?;
    let authority = uri.authority().ok_or(FetchError::NotAllowed("no host"))?;
    if authority.as_str().contains('@') {
        return Err(FetchError::NotAllowed("a user name in the URL"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if policy.allow_loopback_http && is_loopback(authority.host()) => Ok(uri),
        Some("http") => Err(FetchError::NotAllowed("plain HTTP")),
        _ => Err(FetchError::NotAllowed("not HTTPS")),
    }
}

/// `127.0.0.1`, `[::1]` or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost")
}

/// A GET of `url`.
pub async fn get(url: &str, policy: &Policy) -> Result<Response, FetchError> {
    send(hyper::Method::GET, url, &[], Bytes::new(), policy).await
}

/// A GET of `url` with `headers` (and no other but `host`).
pub async fn get_with(url: &str, headers: &[(&str, &str)], policy: &Policy) -> Result<Response, FetchError> {
    send(hyper::Method::GET, url, headers, Bytes::new(), policy).await
}

/// A POST of `body` to `url` with `headers` (and no other but `host`).
pub async fn post(url: &str, headers: &[(&str, &str)], body: Bytes, policy: &Policy) -> Result<Response, FetchError> {
    send(hyper::Method::POST, url, headers, body, policy).await
}

async fn send(
    method: hyper::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    policy: &Policy,
) -> Result<Response, FetchError> {
    let uri = check_url(url, policy)?;
    let mut req = hyper::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(body)).map_err(|_| FetchError::NotAllowed("a header that is not valid"))?;
    let exchange = async {
        let resp = client().request(req).await.map_err(|e| FetchError::Failed(crate::fault::chain(&e)))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), policy.max_bytes).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                FetchError::TooLarge
            } else {
                FetchError::Failed(e.to_string())
            }
        })?;
        Ok(Response { status, body: body.to_bytes() })
    };
    tokio::time::timeout(policy.timeout, exchange).await.map_err(|_| FetchError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_held_to_the_policy() {
        let deployed = Policy::DEPLOYED;
        let dev = Policy::DEPLOYED.with_loopback_http(true);
        assert!(check_url("https://token.actions.githubusercontent.com/.well-known/x", &deployed).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", &deployed).is_err());
        assert!(check_url("http://127.0.0.1:8080/x", &dev).is_ok());
        assert!(check_url("http://localhost/x", &dev).is_ok());
        assert!(check_url("http://[::1]:9/x", &dev).is_ok());
        assert!(check_url("http://10.0.0.1/x", &dev).is_err());
        assert!(check_url("http://example.com/x", &dev).is_err());
        assert!(check_url("https://user@example.com/x", &deployed).is_err());
        assert!(check_url("ftp://example.com/x", &dev).is_err());
        assert!(check_url("/relative", &dev).is_err());
        assert!(check_url("not a url", &dev).is_err());
    }

    /// A local server that answers one request with `answer` (raw HTTP).
    async fn serve_once(answer: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer).await;
            let _ = s.shutdown().await;
        });
        format!("http://{addr}/doc")
    }

    #[tokio::test]
    async fn answers_redirects_and_limits() {
        let dev = Policy::DEPLOYED.with_loopback_http(true);
        let url = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        let r = get(&url, &dev).await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
        // A redirect is an answer, never followed.
        let url = serve_once(
            b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(get(&url, &dev).await.unwrap().status, 302);
        let url = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n0123456789").await;
        let small = Policy { max_bytes: 4, ..dev };
        assert!(matches!(get(&url, &small).await, Err(FetchError::TooLarge)));
        // A server that never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let quick = Policy { timeout: Duration::from_millis(200), ..dev };
        assert!(matches!(get(&url, &quick).await, Err(FetchError::Timeout)));
        drop(listener);
    }
}
