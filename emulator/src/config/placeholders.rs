//! `${…}` placeholders in function environments: the bound addresses, so
//! that port 0 works end to end.

use std::collections::BTreeMap;

const FUNCTION_URL: &str = "${FUNCTION_URL:";

/// The bound addresses, as the placeholders of function environments see them.
#[derive(Debug, Clone)]
pub(crate) struct Placeholders {
    pub management_endpoint: String,
    pub websocket_url: String,
    pub http_url: String,
    /// Function name → `http://HOST:PORT` of its Function URL.
    pub function_urls: BTreeMap<String, String>,
}

impl Placeholders {
    pub fn expand(&self, value: &str) -> String {
        let value = value
            .replace("${MANAGEMENT_ENDPOINT}", &self.management_endpoint)
            .replace("${WEBSOCKET_URL}", &self.websocket_url)
            .replace("${HTTP_URL}", &self.http_url);
        let mut out = String::with_capacity(value.len());
        let mut rest = value.as_str();
        while let Some((before, name, after)) = next_function_url(rest) {
            out.push_str(before);
            match self.function_urls.get(name) {
                Some(url) => out.push_str(url),
                // Refused by `Config::validate`; left as written otherwise.
                None => out.push_str(&rest[before.len()..rest.len() - after.len()]),
            }
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

/// The first `${FUNCTION_URL:name}` of `text`: (text before, name, text after).
fn next_function_url(text: &str) -> Option<(&str, &str, &str)> {
    let start = text.find(FUNCTION_URL)?;
    let name_start = start + FUNCTION_URL.len();
    let end = name_start + text[name_start..].find('}')?;
    Some((&text[..start], &text[name_start..end], &text[end + 1..]))
}

/// The function names of every `${FUNCTION_URL:name}` in `text`.
pub(crate) fn function_url_names(mut text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    while let Some((_, name, after)) = next_function_url(text) {
        names.push(name);
        text = after;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders() {
        let p = Placeholders {
            management_endpoint: "http://127.0.0.1:1/local".into(),
            websocket_url: "ws://127.0.0.1:1/local".into(),
            http_url: "http://127.0.0.1:2".into(),
            function_urls: [("stream".to_owned(), "http://127.0.0.1:3".to_owned())].into(),
        };
        assert_eq!(
            p.expand("${MANAGEMENT_ENDPOINT}|${WEBSOCKET_URL}|${HTTP_URL}|$HOME"),
            "http://127.0.0.1:1/local|ws://127.0.0.1:1/local|http://127.0.0.1:2|$HOME"
        );
        assert_eq!(
            p.expand("${FUNCTION_URL:stream}/a|${FUNCTION_URL:stream}|${FUNCTION_URL:other}|${FUNCTION_URL:"),
            "http://127.0.0.1:3/a|http://127.0.0.1:3|${FUNCTION_URL:other}|${FUNCTION_URL:"
        );
        assert_eq!(
            function_url_names("a${FUNCTION_URL:x}b${FUNCTION_URL:y}"),
            ["x", "y"]
        );
    }
}
