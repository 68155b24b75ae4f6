//! A real OpenID issuer for the tests, on a loopback port: OpenID discovery
//! (`/.well-known/openid-configuration`) and a JWKS (`/jwks`) over HTTP,
//! served from keys the test controls (published, rotated, withdrawn), and
//! JWTs signed with them (ES256 and RS256, any claims). It counts the
//! requests it answers, and can be taken down.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The origin [`Issuer::sign_in`] serves sign-in from.
pub const SIGN_IN_ORIGIN: &str = "https://vault.acme.example";
/// The OpenID provider's button in [`Issuer::sign_in`].
pub const SIGN_IN_NAME: &str = "Acme SSO";

/// A signing key of the issuer.
pub enum SigningKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl SigningKey {
    pub fn ec() -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        SigningKey::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap())
    }

    pub fn rsa() -> Self {
        SigningKey::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            SigningKey::Ec(_) => "ES256",
            SigningKey::Rsa(_) => "RS256",
        }
    }

    /// The public key as a JWK under `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        match self {
            SigningKey::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                       "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
            }
            SigningKey::Rsa(k) => {
                let (n, e) = rsa_public_numbers(k.public_key().as_ref());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
            }
        }
    }

    /// `header.claims.signature` over the given header and claims.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match self {
            SigningKey::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            SigningKey::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out).unwrap();
                out
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// `n` and `e` of a PKCS#1 `RSAPublicKey` (DER: a SEQUENCE of two
/// INTEGERs), without their sign bytes.
fn rsa_public_numbers(der: &[u8]) -> (&[u8], &[u8]) {
    fn item(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = d[0];
        let (len, head) = match d[1] {
            l if l < 0x80 => (l as usize, 2),
            l => {
                let n = (l & 0x7f) as usize;
                (d[2..2 + n].iter().fold(0usize, |a, b| (a << 8) | *b as usize), 2 + n)
            }
        };
        (tag, &d[head..head + len], &d[head + len..])
    }
    let (_, seq, _) = item(der);
    let (_, n, rest) = item(seq);
    let (_, e, _) = item(rest);
    let trim = |x: &[u8]| -> usize { x.iter().take_while(|b| **b == 0).count() };
    (&n[trim(n)..], &e[trim(e)..])
}

struct State {
    /// Published: (kid, public JWK).
    published: Vec<(String, Value)>,
    /// What the token endpoint (`POST /token`) answers next: an ID token.
    next_id_token: Option<String>,
    /// What GitHub's stand-in answers: `POST /login/oauth/access_token`
    /// gives an access token, `GET /user` this user.
    github_user: Option<Value>,
    /// The last request to a token endpoint: its head and body.
    last_token_request: String,
}

pub struct Issuer {
    pub url: String,
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Issuer {
    /// Serves discovery and the JWKS on a fresh loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            published: Vec::new(),
            next_id_token: None,
            github_user: None,
            last_token_request: String::new(),
        }));
        let down = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (st, dn, rq, base) = (state.clone(), down.clone(), requests.clone(), url.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (st, dn, rq, base) = (st.clone(), dn.clone(), rq.clone(), base.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 8192];
                    // The head, then the body its content-length announces.
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let Some(end) = text.find("\r\n\r\n") else {
                            if n == 0 {
                                break;
                            }
                            continue;
                        };
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if n == 0 || buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let path = path.split('?').next().unwrap_or("/").to_owned();
                    if dn.load(Ordering::SeqCst) {
                        let _ = sock
                            .write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                    rq.fetch_add(1, Ordering::SeqCst);
                    let body = match path.as_str() {
                        "/.well-known/openid-configuration" => Some(json!({
                            "issuer": base, "jwks_uri": format!("{base}/jwks"),
                            "authorization_endpoint": format!("{base}/authorize"),
                            "token_endpoint": format!("{base}/token"),
                        })),
                        "/token" => {
                            let mut s = st.lock().unwrap();
                            s.last_token_request = head.clone();
                            s.next_id_token
                                .take()
                                .map(|t| json!({"id_token": t, "access_token": "at", "token_type": "Bearer"}))
                        }
                        "/login/oauth/access_token" => {
                            let mut s = st.lock().unwrap();
                            s.last_token_request = head.clone();
                            Some(match s.github_user.is_some() && head.contains("code=good") {
                                true => json!({"access_token": "gho_standin", "token_type": "bearer"}),
                                false => json!({"error": "bad_verification_code"}),
                            })
                        }
                        "/user" if head.to_ascii_lowercase().contains("authorization: bearer gho_standin") => {
                            st.lock().unwrap().github_user.clone()
                        }
                        "/jwks" => {
                            let keys: Vec<Value> =
                                st.lock().unwrap().published.iter().map(|(_, k)| k.clone()).collect();
                            Some(json!({"keys": keys}))
                        }
                        _ => None,
                    };
                    let resp = match body {
                        Some(b) => {
                            let b = b.to_string();
                            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}", b.len())
                        }
                        None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Issuer { url, state, down, requests }
    }

    /// Publishes `key`'s public half under `kid`.
    pub fn publish(&self, kid: &str, key: &SigningKey) {
        self.state.lock().unwrap().published.push((kid.to_owned(), key.jwk(kid)));
    }

    /// Withdraws every key under `kid`.
    pub fn withdraw(&self, kid: &str) {
        self.state.lock().unwrap().published.retain(|(k, _)| k != kid);
    }

    /// While down, every request answers 503.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// People's sign-in with both providers pointed at this issuer (it is
    /// GitHub's stand-in too), served from [`SIGN_IN_ORIGIN`]: the OpenID
    /// client `client_id` with `client_secret`, the button named
    /// [`SIGN_IN_NAME`], sign-up open or closed.
    pub fn sign_in(&self, client_id: &str, client_secret: &str, signup: bool) -> ibyok::signin::SignInConfig {
        let lookup = |k: &str| -> Option<String> {
            Some(match k {
                "IBYOK_PUBLIC_URL" => SIGN_IN_ORIGIN.to_owned(),
                "IBYOK_OIDC_ISSUER" | "IBYOK_GITHUB_URL" | "IBYOK_GITHUB_API_URL" => self.url.clone(),
                "IBYOK_OIDC_CLIENT_ID" => client_id.to_owned(),
                "IBYOK_OIDC_CLIENT_SECRET" => client_secret.to_owned(),
                "IBYOK_OIDC_NAME" => SIGN_IN_NAME.to_owned(),
                "IBYOK_GITHUB_CLIENT_ID" => "gh-client".to_owned(),
                "IBYOK_GITHUB_CLIENT_SECRET" => "gh-client-secret".to_owned(),
                "IBYOK_SIGNUP" if signup => "open".to_owned(),
                _ => return None,
            })
        };
        ibyok::signin::SignInConfig::from_lookup(&lookup).unwrap()
    }

    /// The token endpoint's next answer: `id_token`.
    pub fn answer_id_token(&self, id_token: String) {
        self.state.lock().unwrap().next_id_token = Some(id_token);
    }

    /// GitHub's stand-in: the user `GET /user` answers (a code `good…`
    /// gets an access token).
    pub fn github_user(&self, user: Value) {
        self.state.lock().unwrap().github_user = Some(user);
    }

    /// The last request a token endpoint received (head and body).
    pub fn last_token_request(&self) -> String {
        self.state.lock().unwrap().last_token_request.clone()
    }

    /// Requests answered so far (not counting those while down).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
