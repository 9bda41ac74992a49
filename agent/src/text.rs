//! Plain-words helpers for what the agent prints and sends: durations,
//! error chains, and texts clipped to a bound. Pure; every layer uses them.

use std::time::Duration;

/// `250 ms`, `3 s`, `1.5 s`, `5 min`.
pub(crate) fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.as_secs() >= 60 && d.as_secs().is_multiple_of(60) && d.subsec_millis() == 0 {
        format!("{} min", d.as_secs() / 60)
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `outer: inner: innermost`, for plain-words error texts.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        let s = err.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = err.source();
    }
    text
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_at_characters_not_bytes() {
        assert_eq!(clip("λλλ", 2), "λλ…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
