//! Output for people: aligned tables and relative times.

use ibyok::clock::{Clock, SystemClock, Timestamp};
use serde_json::Value;

/// "3 minutes ago", "in 29 days", "never".
pub fn relative(v: &Value) -> String {
    let Some(t) = v.as_str().and_then(Timestamp::parse_rfc3339) else {
        return "never".into();
    };
    let now = SystemClock.now().seconds();
    let delta = now - t.seconds();
    let (n, unit) = match delta.unsigned_abs() {
        s if s < 60 => return if delta >= 0 { "just now".into() } else { "in a moment".into() },
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 60 => (s / 86_400, "day"),
        s if s < 86_400 * 730 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if delta >= 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows under headers, columns aligned.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let ago = |s: i64| Value::String(SystemClock.now().plus_seconds(-s).rfc3339());
        assert_eq!(relative(&Value::Null), "never");
        assert_eq!(relative(&ago(5)), "just now");
        assert_eq!(relative(&ago(180)), "3 minutes ago");
        assert_eq!(relative(&ago(3600)), "1 hour ago");
        assert_eq!(relative(&ago(-86_400 * 29 - 100)), "in 29 days");
    }
}
