//! A person's sign-in from the command line (`ibyok login`, `ibyok logout`;
//! API.md, *Sign-in*): the vault's sign-in runs in the browser and ends at a
//! loopback address of this process (RFC 8252) with a one-time code, which
//! only this process's PKCE verifier redeems (`POST /auth/session`) for a
//! session token. [`crate::session`] keeps the token for the other
//! commands; `ibyok logout` ends it (`DELETE /tokens/self`) and forgets it.
//!
//! The token, the code and the verifier are never printed or logged: each
//! lives in a redacting type, and only the start URL (the loopback address
//! with its `state`, and the PKCE challenge) is shown.

use crate::client::{json_bytes, CliError, Client};
use crate::output::relative;
use crate::session::Sessions;
use ibyok::api::Redacted;
use ibyok::secret::TokenSecret;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// How long `ibyok login` waits for the browser.
pub const WAIT: Duration = Duration::from_secs(300);
/// The loopback listener's path the vault sends the browser back to.
const CALLBACK: &str = "/callback";
/// The most of a request's head read from the browser.
const MAX_HEAD: usize = 8 * 1024;

/// `ibyok login`'s options for a person (the workload's are
/// [`crate::identities::WorkloadLogin`]).
#[derive(clap::Args, Debug, Default)]
pub struct PersonLogin {
    /// The sign-in provider; needed only when the vault offers several.
    #[arg(long, value_parser = ["github", "oidc"], conflicts_with = "identity")]
    pub provider: Option<String>,
    /// Do not open a browser: print the address to open (on any machine
    /// whose browser reaches this one's 127.0.0.1, e.g. through an SSH
    /// tunnel of the port it names).
    #[arg(long, conflicts_with = "identity")]
    pub no_browser: bool,
}

/// A sign-in provider the vault offers (`GET /auth/providers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
}

/// The provider to sign in with: the one asked for if the vault offers it,
/// else the only one offered.
pub fn choose(offered: &[Provider], asked: Option<&str>) -> Result<String, CliError> {
    let list = || offered.iter().map(|p| format!("{} ({})", p.id, p.name)).collect::<Vec<_>>().join(", ");
    match (asked, offered) {
        (_, []) => Err("this vault offers no sign-in (its operator has configured no provider); \
                        use a token instead (IBYOK_TOKEN)"
            .into()),
        (Some(asked), _) if offered.iter().any(|p| p.id == asked) => Ok(asked.to_owned()),
        (Some(asked), _) => Err(format!("this vault does not offer `{asked}` sign-in; it offers: {}", list())),
        (None, [one]) => Ok(one.id.clone()),
        (None, _) => {
            Err(format!("this vault offers several sign-in providers: {}; choose one with --provider", list()))
        }
    }
}

/// One sign-in of this process: its `state` (which the browser must bring
/// back) and its PKCE verifier, both 32 random bytes, base64url.
#[derive(Debug)]
pub struct Attempt {
    state: Redacted,
    verifier: Redacted,
    /// `http://127.0.0.1:PORT/callback?state=…`.
    redirect: String,
}

impl Attempt {
    pub fn new(port: u16) -> Self {
        let state = ibyok::signin::random_secret();
        let redirect = format!("http://127.0.0.1:{port}{CALLBACK}?state={}", state.expose());
        Self { state, verifier: ibyok::signin::random_secret(), redirect }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn challenge(&self) -> String {
        ibyok::signin::pkce_challenge(self.verifier.expose())
    }

    /// Where the browser goes: `{url}/auth/{provider}/start?cli=…&codeChallenge=…`.
    pub fn start_url(&self, url: &str, provider: &str) -> String {
        let query =
            serde_urlencoded::to_string([("cli", self.redirect.as_str()), ("codeChallenge", &self.challenge())])
                .unwrap_or_default();
        format!("{}/auth/{provider}/start?{query}", url.trim_end_matches('/'))
    }
}

/// What a request to the loopback listener is.
#[derive(Debug)]
pub enum Callback {
    /// The vault's redirect with this sign-in's state and a code.
    Code(Redacted),
    /// This sign-in's state, but no code.
    NoCode,
    /// A callback without this sign-in's state: not started here (a forged
    /// request, an old tab), refused.
    WrongState,
    /// Anything else (`/favicon.ico`, another method).
    Elsewhere,
}

/// Reads a request's head (`GET /callback?state=…&code=… HTTP/1.1`, its
/// headers): which [`Callback`] it is for the sign-in of `state`.
pub fn parse_callback(head: &[u8], state: &str) -> Callback {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default().trim_end();
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return Callback::Elsewhere;
    };
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    if path != CALLBACK {
        return Callback::Elsewhere;
    }
    let mut query = ibyok::api::body::parse_query(query);
    let param = |q: &mut Vec<(String, String)>, name: &str| {
        q.iter().position(|(k, _)| k == name).map(|i| Redacted::from(q.swap_remove(i).1))
    };
    let code = param(&mut query, "code");
    let theirs = param(&mut query, "state");
    if !theirs.is_some_and(|s| ibyok::signin::same(s.expose(), state)) {
        return Callback::WrongState;
    }
    match code {
        Some(code) if !code.expose().is_empty() => Callback::Code(code),
        _ => Callback::NoCode,
    }
}

/// Reads the head of a request from the browser (to its blank line, at
/// most [`MAX_HEAD`] bytes); `None` when it sends none in time.
fn read_head(stream: &mut TcpStream) -> Option<Redacted<Vec<u8>>> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = Redacted::with_capacity(1024);
    let mut chunk = Redacted::from(vec![0u8; 1024]);
    loop {
        let n = match stream.read(chunk.expose_mut()) {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        head.write_all(&chunk.expose()[..n]).ok()?;
        let seen = head.expose();
        if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if seen.len() >= MAX_HEAD {
            return None;
        }
    }
}

/// Answers the browser with a small page and closes the connection.
fn answer(mut stream: TcpStream, status: &str, title: &str, message: &str) {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · IBYOK</title></head>\
         <body style=\"font-family: system-ui, sans-serif; margin: 4rem auto; max-width: 32rem\">\
         <h1>{t}</h1><p>{m}</p></body></html>",
        t = escape(title),
        m = escape(message),
    );
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nreferrer-policy: no-referrer\r\n\
         content-security-policy: default-src 'none'; style-src 'unsafe-inline'\r\nconnection: close\r\n\r\n",
        html.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(html.as_bytes()));
    let _ = stream.flush();
}

/// Waits up to `wait` for the browser to bring this sign-in's code to
/// `listener`: answers the code and the browser's connection (to be
/// answered once the code is redeemed). Requests elsewhere get 404, and a
/// callback without this sign-in's `state` is refused (400) while the wait
/// goes on.
pub fn wait_for_code(listener: TcpListener, state: &str, wait: Duration) -> Result<(Redacted, TcpStream), CliError> {
    let (tx, rx) = std::sync::mpsc::channel();
    // Each connection is read in a thread of its own: a browser's idle
    // preconnection must not hold up the one that carries the request.
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                if let Some(head) = read_head(&mut stream) {
                    let _ = tx.send((head, stream));
                }
            });
        }
    });
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (head, stream) = rx.recv_timeout(left).map_err(|_| {
            format!("the browser did not come back within {} minutes; run `ibyok login` again", wait.as_secs() / 60)
        })?;
        match parse_callback(head.expose(), state) {
            Callback::Code(code) => return Ok((code, stream)),
            Callback::NoCode => {
                answer(stream, "400 Bad Request", "Sign-in failed", "The vault sent no code. See the terminal.");
                return Err("the vault's redirect carried no code; run `ibyok login` again".into());
            }
            Callback::WrongState => {
                eprintln!("warning: refused a request to the sign-in's loopback address that did not carry its state");
                answer(
                    stream,
                    "400 Bad Request",
                    "Sign-in refused",
                    "This address was not reached from the sign-in that `ibyok login` started. \
                     Close this tab and use the address the terminal shows.",
                );
            }
            Callback::Elsewhere => answer(stream, "404 Not Found", "Not found", "Nothing here."),
        }
    }
}

/// `POST /auth/session`'s answer: the session token, held as a secret.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub token: TokenSecret,
    pub token_id: String,
    pub expires_at: String,
    pub member: Member,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub member_id: String,
    pub name: String,
    pub role: String,
}

fn expose<S: Serializer>(v: &Redacted, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose())
}

/// `POST /auth/session`'s body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Redeem<'a> {
    #[serde(serialize_with = "expose")]
    code: &'a Redacted,
    #[serde(serialize_with = "expose")]
    code_verifier: &'a Redacted,
}

/// Redeems the one-time code with this sign-in's verifier.
pub fn redeem(c: &Client, code: &Redacted, attempt: &Attempt) -> Result<Session, CliError> {
    let body = json_bytes(&Redeem { code, code_verifier: &attempt.verifier });
    let raw = c.try_send("POST", "/auth/session", Some(&body))?.map_err(|r| match r.status {
        401 => "the vault refused the sign-in's code (used already, expired after 60 seconds, or not \
                    this sign-in's); run `ibyok login` again"
            .to_owned(),
        _ => format!("the vault refused the sign-in: {}", r.message),
    })?;
    serde_json::from_slice(raw.expose()).map_err(|_| "the vault's session answer is unreadable".to_owned())
}

/// Opens `url` in the desktop's browser; whether a browser was started.
/// Never an error: the address is printed anyway.
fn open_browser(url: &str) -> bool {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("rundll32", vec!["url.dll,FileProtocolHandler", url])
    } else {
        // Without a display, xdg-open would fall back to a text browser in
        // this very terminal.
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            return false;
        }
        ("xdg-open", vec![url])
    };
    let spawned = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

/// `ibyok login` for a person: signs in through the browser and keeps the
/// session for the other commands. `explicit_token`: a token given by
/// `--token` or `IBYOK_TOKEN`, which wins over the session.
pub fn login(
    url: &str,
    args: &PersonLogin,
    sessions: &Sessions,
    explicit_token: bool,
    as_json: bool,
) -> Result<(), CliError> {
    #[derive(Deserialize)]
    struct Offered {
        providers: Vec<Provider>,
    }
    let c = Client::anonymous(url);
    let offered: Offered = serde_json::from_value(c.call("GET", "/auth/providers", None)?)
        .map_err(|_| format!("{url} does not answer GET /auth/providers as an IBYOK vault does"))?;
    let provider = choose(&offered.providers, args.provider.as_deref())?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot listen on 127.0.0.1 for the browser's return: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let attempt = Attempt::new(port);
    let start = attempt.start_url(url, &provider);
    let opened = !args.no_browser && open_browser(&start);
    if opened {
        eprintln!("Opening the browser to sign in. If it does not open, visit this address:");
    } else {
        eprintln!("To sign in, open this address in a browser on this machine:");
    }
    eprintln!("  {start}");
    eprintln!("Waiting for the browser (at most {} minutes)…", WAIT.as_secs() / 60);
    let (code, stream) = wait_for_code(listener, attempt.state.expose(), WAIT)?;
    let session = match redeem(&c, &code, &attempt) {
        Ok(s) => s,
        Err(e) => {
            answer(stream, "400 Bad Request", "Sign-in failed", "The vault did not open a session. See the terminal.");
            return Err(e);
        }
    };
    drop(code);
    let kept = sessions.save(url, &session.token);
    match &kept {
        Ok(_) => answer(
            stream,
            "200 OK",
            "Signed in",
            &format!("Signed in as {}; you can close this tab.", session.member.name),
        ),
        Err(_) => answer(
            stream,
            "500 Internal Server Error",
            "Sign-in failed",
            "The session could not be kept. See the terminal.",
        ),
    }
    let (place, keyring_failed) = match kept {
        Ok(k) => k,
        Err(e) => {
            // Nobody could use it: end it rather than leave it live.
            let _ = Client::new(url, Some(session.token)).and_then(|c| c.send("DELETE", "/tokens/self", None));
            return Err(format!("signed in, but the session could not be kept: {e}"));
        }
    };
    if as_json {
        crate::client::print_json(&json!({
            "tokenId": session.token_id,
            "expiresAt": session.expires_at,
            "member": session.member,
            "keptIn": place.to_string(),
        }));
    } else {
        println!(
            "Signed in as {} ({}) until {} ({})",
            session.member.name,
            session.member.role,
            session.expires_at,
            relative(&Value::from(session.expires_at.as_str()))
        );
    }
    if let Some(why) = keyring_failed {
        eprintln!("The keyring is out of reach ({why}); the session is kept in {place}.");
    } else {
        eprintln!("The session is kept in {place}.");
    }
    if explicit_token {
        eprintln!("note: a token is given (IBYOK_TOKEN or --token): it wins over this session until it is unset");
    }
    Ok(())
}

/// `ibyok logout`: ends the session kept for `url` on the vault, then
/// forgets it.
pub fn logout(url: &str, sessions: &Sessions) -> Result<(), CliError> {
    let Some(token) = sessions.load(url)? else {
        println!("No session is kept for {url}: nothing to sign out of.");
        return Ok(());
    };
    let c = Client::new(url, Some(token))?.without_expiry_warning();
    let ended = match c.try_send("DELETE", "/tokens/self", None) {
        Ok(Ok(_)) => "ended",
        Ok(Err(r)) if r.status == 401 => "had ended already",
        Ok(Err(r)) => return Err(format!("the vault did not end the session: {}; it is still kept", r.message)),
        Err(e) => return Err(format!("{e}; the session is still kept: run `ibyok logout` again")),
    };
    let places = sessions.remove(url)?;
    let kept: Vec<String> = places.iter().map(ToString::to_string).collect();
    println!("Signed out of {url}: the session {ended}, and is removed from {}.", kept.join(" and "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(ids: &[&str]) -> Vec<Provider> {
        ids.iter().map(|id| Provider { id: (*id).to_owned(), name: format!("{id} sign-in") }).collect()
    }

    #[test]
    fn the_provider_is_the_only_one_offered_or_the_one_asked_for() {
        assert_eq!(choose(&providers(&["oidc"]), None).unwrap(), "oidc");
        assert_eq!(choose(&providers(&["github", "oidc"]), Some("oidc")).unwrap(), "oidc");
        let several = choose(&providers(&["github", "oidc"]), None).unwrap_err();
        assert!(
            several.contains("github (github sign-in)")
                && several.contains("oidc (oidc sign-in)")
                && several.contains("--provider"),
            "{several}"
        );
        let missing = choose(&providers(&["github"]), Some("oidc")).unwrap_err();
        assert!(missing.contains("`oidc`") && missing.contains("github"), "{missing}");
        assert!(choose(&[], None).unwrap_err().contains("no sign-in"));
        assert!(choose(&[], Some("github")).unwrap_err().contains("no sign-in"));
    }

    #[test]
    fn the_start_url_carries_the_loopback_address_and_the_pkce_challenge() {
        let a = Attempt::new(53682);
        let start = a.start_url("https://vault.acme.example/", "github");
        let (base, query) = start.split_once('?').unwrap();
        assert_eq!(base, "https://vault.acme.example/auth/github/start");
        let q = ibyok::api::body::parse_query(Some(query));
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        let cli = get("cli");
        assert_eq!(cli, format!("http://127.0.0.1:53682/callback?state={}", a.state.expose()));
        assert!(ibyok::signin::valid_cli_redirect(&cli), "the vault's check accepts it: {cli}");
        assert!(query.contains("cli=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback%3Fstate%3D"), "encoded: {query}");
        // The verifier: 32 random bytes, base64url (43 characters); the
        // challenge its S256.
        assert_eq!(a.verifier.expose().len(), 43);
        assert_eq!(a.state.expose().len(), 43);
        assert_eq!(get("codeChallenge"), ibyok::signin::pkce_challenge(a.verifier.expose()));
        assert_eq!(get("codeChallenge").len(), 43);
        assert!(!start.contains(a.verifier.expose().as_str()), "never the verifier itself");
        // Each attempt its own.
        let b = Attempt::new(53682);
        assert_ne!(a.state.expose(), b.state.expose());
        assert_ne!(a.verifier.expose(), b.verifier.expose());
    }

    #[test]
    fn secrets_of_a_sign_in_never_print() {
        let a = Attempt::new(1);
        let printed = format!("{a:?}");
        assert!(!printed.contains(a.verifier.expose().as_str()), "{printed}");
        assert!(printed.contains("[redacted]"));
        let s: Session = serde_json::from_value(json!({"token": "ibyok_secret_session", "tokenId": "tok_1",
            "expiresAt": "2030-01-01T00:00:00Z", "member": {"memberId": "mem_1", "name": "Ana", "role": "admin"}}))
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("ibyok_secret_session") && printed.contains("Ana"), "{printed}");
        let c = parse_callback(b"GET /callback?state=s&code=the-code HTTP/1.1\r\n\r\n", "s");
        assert!(!format!("{c:?}").contains("the-code"));
        let body = json_bytes(&Redeem { code: &Redacted::from("c0de".to_owned()), code_verifier: &a.verifier });
        let sent: Value = serde_json::from_slice(body.expose()).unwrap();
        assert_eq!(sent, json!({"code": "c0de", "codeVerifier": a.verifier.expose()}));
    }

    #[test]
    fn only_a_callback_with_this_sign_ins_state_brings_a_code() {
        let state = "Zm9vYmFy-state_0123456789";
        let req = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
        let code = |c: Callback| match c {
            Callback::Code(code) => Some(code.expose().clone()),
            _ => None,
        };
        let good = parse_callback(req(&format!("/callback?state={state}&code=abc-DEF_1")).as_bytes(), state);
        assert_eq!(code(good).as_deref(), Some("abc-DEF_1"));
        // Percent-encoded and in any order.
        let encoded = parse_callback(req(&format!("/callback?code=a%2Bb&state={state}")).as_bytes(), state);
        assert_eq!(code(encoded).as_deref(), Some("a+b"));
        for forged in [
            "/callback?state=other&code=abc".to_owned(),
            "/callback?code=abc".to_owned(),
            format!("/callback?state={state}x&code=abc"),
            format!("/callback?state={}&code=abc", &state[1..]),
        ] {
            assert!(matches!(parse_callback(req(&forged).as_bytes(), state), Callback::WrongState), "{forged}");
        }
        assert!(matches!(parse_callback(req(&format!("/callback?state={state}")).as_bytes(), state), Callback::NoCode));
        assert!(matches!(
            parse_callback(req(&format!("/callback?state={state}&code=")).as_bytes(), state),
            Callback::NoCode
        ));
        for elsewhere in [req("/favicon.ico"), req(&format!("/other?state={state}&code=x"))] {
            assert!(matches!(parse_callback(elsewhere.as_bytes(), state), Callback::Elsewhere));
        }
        let post = format!("POST /callback?state={state}&code=x HTTP/1.1\r\n\r\n");
        assert!(matches!(parse_callback(post.as_bytes(), state), Callback::Elsewhere));
        assert!(matches!(parse_callback(b"\xff\xfe garbage", state), Callback::Elsewhere));
    }

    /// A request to `port` as a browser sends it: the status line and body
    /// of the answer.
    fn browse(port: u16, target: &str) -> (String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    #[test]
    fn the_loopback_wait_refuses_forgeries_and_hands_over_the_code_and_the_browser() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let a = Attempt::new(port);
        let state = a.state.expose().clone();
        let browser = std::thread::spawn(move || {
            // An idle connection (a browser's preconnection) holds nothing up.
            let _idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let refused = browse(port, "/callback?state=forged&code=attacker-code");
            let missing = browse(port, "/favicon.ico");
            let signed_in = browse(port, &format!("/callback?state={state}&code=the-one-time-code"));
            (refused, missing, signed_in)
        });
        let (code, stream) = wait_for_code(listener, a.state.expose(), Duration::from_secs(20)).unwrap();
        assert_eq!(code.expose(), "the-one-time-code");
        answer(stream, "200 OK", "Signed in", "Signed in as <Ana>; you can close this tab.");
        let (refused, missing, signed_in) = browser.join().unwrap();
        assert_eq!(refused.0, "HTTP/1.1 400 Bad Request");
        assert!(refused.1.contains("Sign-in refused") && !refused.1.contains("attacker-code"));
        assert_eq!(missing.0, "HTTP/1.1 404 Not Found");
        assert_eq!(signed_in.0, "HTTP/1.1 200 OK");
        assert!(signed_in.1.contains("Signed in as &lt;Ana&gt;; you can close this tab."), "{}", signed_in.1);
    }

    #[test]
    fn the_loopback_wait_ends_when_nobody_comes_back() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let started = std::time::Instant::now();
        let err = wait_for_code(listener, "s", Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("did not come back") && err.contains("ibyok login"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_callback_with_the_state_but_no_code_ends_the_wait() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let browser = std::thread::spawn(move || browse(port, "/callback?state=s"));
        let err = wait_for_code(listener, "s", Duration::from_secs(20)).unwrap_err();
        assert!(err.contains("no code"), "{err}");
        assert_eq!(browser.join().unwrap().0, "HTTP/1.1 400 Bad Request");
    }
}
