//! A stand-in for GitHub's secret scanning, on a loopback port: it serves
//! its keys document (`/meta/public_keys/secret_scanning`, the shape of
//! GitHub's) from P-256 keys the test controls (published current or not),
//! and signs reports as GitHub does (ECDSA P-256 / SHA-256 over the raw
//! body, base64 of the DER signature).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A P-256 signing key.
pub struct ScanKey(EcdsaKeyPair);

impl ScanKey {
    pub fn generate() -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
        ScanKey(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap())
    }

    /// The public key as a PEM `PUBLIC KEY` block.
    pub fn pem(&self) -> String {
        let der = self.0.public_key().as_der().unwrap();
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    /// Base64 of the DER signature of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        STANDARD.encode(self.0.sign(&SystemRandom::new(), body).unwrap().as_ref())
    }
}

pub struct Scanner {
    /// The keys document's URL (for `Config::github_keys_url`).
    pub keys_url: String,
    published: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicUsize>,
}

impl Scanner {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let keys_url =
            format!("http://127.0.0.1:{}/meta/public_keys/secret_scanning", listener.local_addr().unwrap().port());
        let published: Arc<Mutex<Vec<Value>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (pb, rq) = (published.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (pb, rq) = (pb.clone(), rq.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    rq.fetch_add(1, Ordering::SeqCst);
                    let resp = if path == "/meta/public_keys/secret_scanning" {
                        let b = json!({"public_keys": *pb.lock().unwrap()}).to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                            b.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Scanner { keys_url, published, requests }
    }

    /// Publishes `key` under `id`, current or not.
    pub fn publish(&self, id: &str, key: &ScanKey, current: bool) {
        self.published.lock().unwrap().push(json!({"key_identifier": id, "key": key.pem(), "is_current": current}));
    }

    /// Requests for the keys document so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A report's request: `body` as given, signed as `key_id` with `signature`.
pub fn report(body: &[u8], key_id: Option<&str>, signature: Option<&str>) -> crate::Req {
    let mut r = crate::Req::post("/github/secret-scanning").raw_body(Some("application/json"), body);
    r.0.user_agent = Some("GitHub-Secret-Scanning".into());
    r.0.github_key_id = key_id.map(str::to_owned);
    r.0.github_signature = signature.map(str::to_owned);
    r
}

/// A report's body, as GitHub serialises it: compact JSON.
pub fn body(tokens: &[&str]) -> Vec<u8> {
    let entries: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "ibyok_token", "url": "https://github.com/acme/app/blob/0123abc/.env", "source": "content"}))
        .collect();
    serde_json::to_vec(&entries).unwrap()
}
