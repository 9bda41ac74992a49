//! The WebSocket API's Lambda events, with exactly the keys AWS sends
//! (checked against AWS's recorded fixtures in the tests).

use std::collections::BTreeMap;

use serde::Serialize;

/// A `$connect`, MESSAGE or `$disconnect` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebSocketEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_value_headers: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    pub request_context: RequestContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestContext {
    pub route_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_status_code: Option<u16>,
    pub event_type: &'static str,
    pub extended_request_id: String,
    pub request_time: String,
    pub message_direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    pub stage: String,
    pub connected_at: i64,
    pub request_time_epoch: i64,
    pub identity: Identity,
    pub request_id: String,
    pub domain_name: String,
    pub connection_id: String,
    pub api_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Identity {
    pub source_ip: String,
}

/// Header names as a client would usually write them: the fallback when the
/// client's own casing is not known (hyper lowercases names).
pub(crate) fn client_header_case(lower: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("sec-websocket-key", "Sec-WebSocket-Key"),
        ("sec-websocket-version", "Sec-WebSocket-Version"),
        ("sec-websocket-extensions", "Sec-WebSocket-Extensions"),
        ("sec-websocket-protocol", "Sec-WebSocket-Protocol"),
    ];
    if let Some((_, known)) = KNOWN.iter().find(|(l, _)| *l == lower) {
        return (*known).to_owned();
    }
    lower
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `queryStringParameters` (last value wins) and the multi-value map, from a raw query.
pub(crate) fn query_maps(raw: &str) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in crate::payload_v2::parse_query(raw) {
        single.insert(key.clone(), value.clone());
        multi.entry(key).or_default().push(value);
    }
    (single, multi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_case() {
        assert_eq!(client_header_case("host"), "Host");
        assert_eq!(client_header_case("sec-websocket-key"), "Sec-WebSocket-Key");
        assert_eq!(client_header_case("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(client_header_case("x-amzn-trace-id"), "X-Amzn-Trace-Id");
    }

    #[test]
    fn query_maps_keep_last_and_all() {
        let (single, multi) = query_maps("a=1&b=x%20y&a=2");
        assert_eq!(single["a"], "2");
        assert_eq!(single["b"], "x y");
        assert_eq!(multi["a"], vec!["1", "2"]);
    }
}
