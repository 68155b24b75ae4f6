//! `api::route(method, path)` against a reference matcher built from the
//! route table itself (`Route::ALL` and `Route::key`).
#![no_main]

use arbitrary::Arbitrary;
use ibyok::api::{route, Matched, Route};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Keys,
    Tokens,
    Value,
    External,
    SelfLit,
    Settings,
    Modes,
    Usage,
    Audit,
    Promote,
    Versions,
    Empty,
    Id(String),
    Auth,
    Providers,
    Session,
    Start,
    Callback,
    Github,
    Oidc,
    Members,
    Identities,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A path of known words, mostly.
    Built {
        method: Method,
        leading_slash: bool,
        segments: Vec<Segment>,
        trailing_slash: bool,
    },
    Raw {
        method: Method,
        path: String,
    },
}

fn method(m: &Method) -> &str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Other(s) => s,
    }
}

fn segment(s: &Segment) -> &str {
    match s {
        Segment::Keys => "keys",
        Segment::Tokens => "tokens",
        Segment::Value => "value",
        Segment::External => "external",
        Segment::SelfLit => "self",
        Segment::Settings => "settings",
        Segment::Modes => "modes",
        Segment::Usage => "usage",
        Segment::Audit => "audit",
        Segment::Promote => "promote",
        Segment::Versions => "versions",
        Segment::Empty => "",
        Segment::Id(s) => s,
        Segment::Auth => "auth",
        Segment::Providers => "providers",
        Segment::Session => "session",
        Segment::Start => "start",
        Segment::Callback => "callback",
        Segment::Github => "github",
        Segment::Oidc => "oidc",
        Segment::Members => "members",
        Segment::Identities => "identities",
    }
}

/// The templates whose shape `path` fits, each with the id it binds and
/// its number of placeholders.
fn candidates(path: &str) -> Vec<(Route, &str, Option<&str>, usize)> {
    let Some(rest) = path.strip_prefix('/') else { return Vec::new() };
    let segs: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::new();
    for r in Route::ALL {
        let (m, template) = r.key().split_once(' ').expect("route keys are `METHOD /path`");
        let tsegs: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut id = None;
        let mut holes = 0;
        let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                holes += 1;
                id = Some(*s);
                !s.is_empty()
            } else {
                t == s
            }
        });
        if fits {
            out.push((r, m, id, holes));
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let (m, path) = match &input {
        Input::Built { method: m, leading_slash, segments, trailing_slash } => {
            let mut p = if *leading_slash { "/".to_owned() } else { String::new() };
            p.push_str(&segments.iter().map(segment).collect::<Vec<_>>().join("/"));
            if *trailing_slash {
                p.push('/');
            }
            (method(m), p)
        }
        Input::Raw { method: m, path } => (method(m), path.clone()),
    };
    let got = route(m, &path);
    let cands = candidates(&path);
    // A literal segment beats a placeholder (`DELETE /tokens/self`).
    let expected = match cands.iter().filter(|c| c.1 == m).min_by_key(|c| c.3) {
        Some((r, _, id, _)) => Some((*r, *id)),
        None => None,
    };
    // `Matched::MethodNotAllowed` may or may not carry the `Allow` list, so
    // it is only ever matched by the wildcard.
    match got {
        Matched::Route(r, id) => {
            assert_eq!(Some((r, id)), expected, "{m} {path:?}");
            // The id is a slice of the path that the handler receives as is.
            let (_, template) = r.key().split_once(' ').unwrap();
            assert_eq!(id.is_some(), template.contains('{'), "{r:?}");
            if let Some(id) = id {
                assert!(!id.is_empty() && !id.contains('/'));
            }
        }
        Matched::NotFound => assert!(cands.is_empty(), "{m} {path:?}: NotFound, but {cands:?} fit"),
        ref other => {
            assert!(expected.is_none() && !cands.is_empty(), "{m} {path:?}: {other:?}, expected one of {cands:?}");
            // When it names the methods the path takes, they are exactly
            // the candidates' (the `Allow` header).
            let shown = format!("{other:?}");
            if let Some(list) = shown.strip_prefix("MethodNotAllowed(\"").and_then(|s| s.strip_suffix("\")")) {
                let mut named: Vec<&str> = list.split(", ").collect();
                let mut want: Vec<&str> = cands.iter().map(|c| c.1).collect();
                named.sort_unstable();
                want.sort_unstable();
                want.dedup();
                assert_eq!(named, want, "{m} {path:?}: Allow");
            }
        }
    }
});
