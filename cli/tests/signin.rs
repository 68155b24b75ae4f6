//! `ibyok login` and `ibyok logout` for a person, end to end and offline:
//! `ibyok dev` with GitHub sign-in pointed at a stand-in for GitHub (its
//! token endpoint and user API) served here, the CLI as a process, and the
//! test as the browser (it follows the printed address's redirects by hand,
//! the sign-in's cookie included). The session is kept in a file of a
//! config folder of the test's own (`IBYOK_KEYRING=off`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ibyok");

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GitHub as the vault sees it: `POST /login/oauth/access_token` answers an
/// access token for the code `gh-code` (with a PKCE verifier), `GET /user`
/// the user 4242, `octocat`.
fn github_stand_in() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let answer = if line.starts_with("POST /login/oauth/access_token") {
                if body.contains("code=gh-code") && body.contains("code_verifier=") {
                    r#"{"access_token":"gho_stand_in","token_type":"bearer","scope":"read:user"}"#
                } else {
                    r#"{"error":"bad_verification_code"}"#
                }
            } else if line.starts_with("GET /user ") {
                r#"{"id":4242,"login":"octocat","name":"Octo Cat"}"#
            } else {
                "{}"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// `ibyok dev` with GitHub sign-in at the stand-in: its URL and root token.
fn start_dev(github: &str) -> (Proc, String, String) {
    let mut child = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0", "--github-client-id", "gh-client"])
        .args(["--github-url", github, "--github-api-url", github])
        .env("IBYOK_GITHUB_CLIENT_SECRET", "gh-client-secret")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let token = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix("Root token: ").map(str::to_owned))
        .expect("a root token line");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map(Result::unwrap);
    let url = lines
        .find_map(|l| l.strip_prefix("Listening on ").map(|r| r.split(' ').next().unwrap().to_owned()))
        .expect("a listening line");
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), url, token)
}

/// The CLI with this vault and config folder, no token in its environment.
fn ibyok(url: &str, config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("IBYOK_URL", url)
        .env("XDG_CONFIG_HOME", config)
        .env("IBYOK_KEYRING", "off")
        .env_remove("IBYOK_TOKEN")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn browser() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(20)).build()
}

fn query_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .to_owned()
}

struct Config(PathBuf);

impl Drop for Config {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_person_signs_in_from_the_cli_uses_the_session_and_signs_out() {
    let github = github_stand_in();
    let (_dev, url, root) = start_dev(&github);
    let config = Config(std::env::temp_dir().join(format!("ibyok-cli-signin-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&config.0);
    let invited: serde_json::Value = ureq::post(&format!("{url}/members"))
        .set("authorization", &format!("Bearer {root}"))
        .send_json(serde_json::json!({"provider": "github", "login": "octocat", "role": "developer"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(invited["role"], "developer");

    // GIVEN `ibyok login`, waiting for the browser at the address it prints
    let mut login = Proc(
        ibyok(&url, &config.0, &["login", "--no-browser"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = login.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(login.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut printed = Vec::new();
    let start = loop {
        let l = rx.recv_timeout(Duration::from_secs(30)).expect("the start address");
        printed.push(l.clone());
        if let Some(a) = l.strip_prefix("  http") {
            break format!("http{a}");
        }
    };
    assert!(start.starts_with(&format!("{url}/auth/github/start?cli=http%3A%2F%2F127.0.0.1%3A")), "{start}");

    // WHEN the browser goes there: the vault sends it to GitHub, with a
    // cookie binding the sign-in to it…
    let r = browser().get(&start).call().unwrap();
    assert_eq!(r.status(), 302);
    let to_github = r.header("location").unwrap().to_owned();
    assert!(to_github.starts_with(&format!("{github}/login/oauth/authorize?")), "{to_github}");
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    // …GitHub sends it back to the vault, which sends it to the CLI's
    // loopback address with a one-time code…
    let state = query_param(&to_github, "state");
    let back = format!("{url}/auth/github/callback?code=gh-code&state={state}");
    let r = browser().get(&back).set("cookie", &cookie).call().unwrap();
    assert_eq!(r.status(), 302, "{}", r.into_string().unwrap());
    let to_cli = r.header("location").unwrap().to_owned();
    assert!(to_cli.starts_with("http://127.0.0.1:") && to_cli.contains("/callback?state="), "{to_cli}");
    let code = query_param(&to_cli, "code");
    // (a request without the CLI's state is refused, and the CLI waits on)
    let port_path = to_cli.split_once("?").unwrap().0;
    let forged = browser().get(&format!("{port_path}?state=forged&code={code}")).call();
    assert!(matches!(forged, Err(ureq::Error::Status(400, _))), "{forged:?}");
    // …and the CLI redeems the code and tells the browser.
    let page = browser().get(&to_cli).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.into_string().unwrap().contains("Signed in as Octo Cat; you can close this tab."));

    // THEN the CLI says who signed in, until when, and where the session is
    let status = login.0.wait().unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    printed.extend(std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(5)).ok()));
    let err = printed.join("\n");
    assert!(status.success(), "{out}{err}");
    assert!(out.starts_with("Signed in as Octo Cat (developer) until 20"), "{out}");
    let file = config.0.join("ibyok/session");
    assert!(err.contains(&format!("The session is kept in {} (mode 0600)", file.display())), "{err}");
    assert!(err.contains("refused a request"), "the forged request is reported: {err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = kept[&url].as_str().expect("the session under the vault's URL").to_owned();
    assert!(token.starts_with("ibyok_"));
    for secret in [&token, &code] {
        assert!(!out.contains(secret.as_str()) && !err.contains(secret.as_str()), "a secret printed: {out}{err}");
    }

    // AND the other commands use the session when no token is given…
    let (rc, out, err) = run(ibyok(&url, &config.0, &["keys", "list"]));
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.starts_with("KEY ID"), "{out}");
    // …with the developer's scopes, not more…
    let (rc, _, err) = run(ibyok(&url, &config.0, &["members", "invite", "github:someone", "--role", "viewer"]));
    assert_eq!(rc, 1);
    assert!(err.contains("HTTP 403"), "{err}");
    // …and a token given explicitly wins over it.
    let mut explicit = ibyok(&url, &config.0, &["keys", "list"]);
    explicit.env("IBYOK_TOKEN", "ibyok_not_a_real_token_0000000000000000");
    let (rc, _, err) = run(explicit);
    assert_eq!(rc, 1);
    assert!(err.contains("HTTP 401") && !err.contains("ibyok login"), "the explicit token was used: {err}");

    // WHEN the person signs out
    let (rc, out, err) = run(ibyok(&url, &config.0, &["logout"]));
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains(&format!("Signed out of {url}: the session ended")), "{out}");
    // THEN the session is gone from the file and ended on the vault
    assert!(!file.exists(), "the file held only this session");
    let (rc, _, err) = run(ibyok(&url, &config.0, &["keys", "list"]));
    assert_eq!(rc, 1);
    assert!(err.contains("no token: sign in with `ibyok login`"), "{err}");
    let revoked = ureq::get(&format!("{url}/keys")).set("authorization", &format!("Bearer {token}")).call();
    assert!(matches!(revoked, Err(ureq::Error::Status(401, _))), "{revoked:?}");
    let (rc, out, _) = run(ibyok(&url, &config.0, &["logout"]));
    assert_eq!(rc, 0);
    assert!(out.contains("No session is kept"), "{out}");
}

#[test]
fn a_session_that_ended_on_the_vault_says_to_sign_in_again_and_logs_out_quietly() {
    let github = github_stand_in();
    let (_dev, url, root) = start_dev(&github);
    let config = Config(std::env::temp_dir().join(format!("ibyok-cli-signin-ended-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&config.0);
    // A token kept as a session, then revoked behind the CLI's back.
    let created: serde_json::Value = ureq::post(&format!("{url}/tokens"))
        .set("authorization", &format!("Bearer {root}"))
        .send_json(serde_json::json!({"name": "session-like", "scopes": ["keys:read"]}))
        .unwrap()
        .into_json()
        .unwrap();
    let token = created["token"].as_str().unwrap();
    std::fs::create_dir_all(config.0.join("ibyok")).unwrap();
    std::fs::write(config.0.join("ibyok/session"), serde_json::json!({ &url: token }).to_string()).unwrap();
    let (rc, _, err) = run(ibyok(&url, &config.0, &["keys", "list"]));
    assert_eq!(rc, 0, "{err}");
    ureq::delete(&format!("{url}/tokens/self")).set("authorization", &format!("Bearer {token}")).call().unwrap();
    let (rc, _, err) = run(ibyok(&url, &config.0, &["keys", "list"]));
    assert_eq!(rc, 1);
    assert!(err.contains("HTTP 401") && err.contains("run `ibyok login` again"), "{err}");
    let (rc, out, err) = run(ibyok(&url, &config.0, &["logout"]));
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("the session had ended already"), "{out}");
    assert!(!config.0.join("ibyok/session").exists());
}

#[test]
fn login_names_the_providers_when_the_vault_offers_none_or_not_the_one_asked_for() {
    let github = github_stand_in();
    let (_dev, url, _) = start_dev(&github);
    let config = Config(std::env::temp_dir().join(format!("ibyok-cli-signin-none-{}", std::process::id())));
    let (rc, _, err) = run(ibyok(&url, &config.0, &["login", "--provider", "oidc", "--no-browser"]));
    assert_eq!(rc, 1);
    assert!(err.contains("does not offer `oidc`") && err.contains("github (GitHub)"), "{err}");
    // A vault without sign-in.
    let mut plain = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env_remove("IBYOK_GITHUB_CLIENT_ID")
        .env_remove("IBYOK_OIDC_ISSUER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(plain.stderr.take().unwrap()).lines().map(Result::unwrap);
    let plain_url =
        lines.find_map(|l| l.strip_prefix("Listening on ").map(|r| r.split(' ').next().unwrap().to_owned())).unwrap();
    let _plain = Proc(plain);
    std::thread::spawn(move || for _ in lines {});
    let (rc, _, err) = run(ibyok(&plain_url, &config.0, &["login", "--no-browser"]));
    assert_eq!(rc, 1);
    assert!(err.contains("offers no sign-in"), "{err}");
}
