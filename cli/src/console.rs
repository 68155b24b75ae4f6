//! The web console (`console/app/`), embedded in the binary and served by
//! `ibyok dev` at `/console/` with the headers `API.md` lists. The files are
//! plain ES modules and CSS: what is in the folder is what is served.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response};

/// The console's files: path under `/console/`, content type, bytes.
macro_rules! files {
    ($($path:literal => $ty:literal),* $(,)?) => {
        &[$(($path, $ty, include_bytes!(concat!("../../console/app/", $path)) as &[u8])),*]
    };
}

pub const FILES: &[(&str, &str, &[u8])] = files! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "js/main.js" => "text/javascript; charset=utf-8",
    "js/api.js" => "text/javascript; charset=utf-8",
    "js/dom.js" => "text/javascript; charset=utf-8",
    "js/token.js" => "text/javascript; charset=utf-8",
    "js/keys.js" => "text/javascript; charset=utf-8",
    "js/tokens.js" => "text/javascript; charset=utf-8",
    "js/identities.js" => "text/javascript; charset=utf-8",
    "js/members.js" => "text/javascript; charset=utf-8",
    "js/modes.js" => "text/javascript; charset=utf-8",
    "js/usage.js" => "text/javascript; charset=utf-8",
    "js/audit.js" => "text/javascript; charset=utf-8",
    "js/people.js" => "text/javascript; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
};

pub use ibyok::api::CONSOLE_CSP as CSP;

/// The response for a console path, or `None` when `path` is not the
/// console's (the API answers it; `GET /` stays a 404 there).
pub fn serve(method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
    let rest = path.strip_prefix("/console")?;
    if method != Method::GET {
        return None;
    }
    let file = match rest {
        "" => return Some(respond(308, "text/plain; charset=utf-8", b"", Some("/console/"))),
        "/" => "index.html",
        r => r.strip_prefix('/')?,
    };
    Some(match FILES.iter().find(|(p, _, _)| *p == file) {
        Some((_, ty, body)) => respond(200, ty, body, None),
        None => respond(404, "text/plain; charset=utf-8", b"not found\n", None),
    })
}

fn respond(status: u16, content_type: &str, body: &'static [u8], location: Option<&str>) -> Response<Full<Bytes>> {
    let mut out = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cache-control", "no-cache");
    if let Some(l) = location {
        out = out.header("location", l);
    }
    out.body(Full::new(Bytes::from_static(body))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/app")
    }

    fn walk(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_console_is_embedded() {
        let mut on_disk = Vec::new();
        walk(&app_dir(), "", &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn console_paths_carry_the_security_headers_and_others_fall_through() {
        let r = serve(&Method::GET, "/console/").unwrap();
        assert_eq!(r.status(), 200);
        for (h, v) in [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")] {
            assert_eq!(r.headers()[h], v);
        }
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        assert_eq!(serve(&Method::GET, "/console/js/main.js").unwrap().status(), 200);
        assert_eq!(serve(&Method::GET, "/console/nope.js").unwrap().status(), 404);
        assert_eq!(serve(&Method::GET, "/console").unwrap().status(), 308);
        assert!(serve(&Method::GET, "/").is_none());
        assert!(serve(&Method::GET, "/keys").is_none());
        assert!(serve(&Method::GET, "/consolex").is_none());
        assert!(serve(&Method::POST, "/console/").is_none());
    }
}
