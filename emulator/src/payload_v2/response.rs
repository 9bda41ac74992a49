//! A function's payload format 2.0 result → the client's response.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::Value;

/// Maps a function result to the client's response (the body as bytes, for
/// the entry to wrap); `None` = an invalid result, which each entry answers
/// its own way.
pub(crate) fn map_response(payload: &[u8]) -> Option<Response<Bytes>> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // Valid JSON without a statusCode: a 200 with that JSON as the body.
        let mut response = Response::new(Bytes::copy_from_slice(payload));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Some(response);
    };
    let is_base64 = match object.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool()?,
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if is_base64 => {
            Bytes::from(base64::engine::general_purpose::STANDARD.decode(s).ok()?)
        }
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(_) => return None,
    };
    let (head, ()) = response_head(object, HeaderValues::Single)?.into_parts();
    Some(Response::from_parts(head, body))
}

/// Which header values a response may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderValues {
    /// A string, number or boolean per name (payload format 2.0).
    Single,
    /// Also a list of strings, one header line each (the prelude of a
    /// streamed response, as `lambda_runtime` writes a repeated header).
    SingleOrList,
}

/// `statusCode` (200 when absent), `headers` and `cookies` → a response
/// head; `None` when one of them is invalid.
pub(crate) fn response_head(
    object: &serde_json::Map<String, Value>,
    values: HeaderValues,
) -> Option<Response<()>> {
    let status = match object.get("statusCode") {
        None => StatusCode::OK,
        Some(code) => code
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())?,
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    let out = response.headers_mut();
    let scalar = |value: &Value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if let Some(headers) = object.get("headers").filter(|h| !h.is_null()) {
        for (name, value) in headers.as_object()? {
            let name = HeaderName::try_from(name.as_str()).ok()?;
            let values = match (value, values) {
                (Value::Array(list), HeaderValues::SingleOrList) => {
                    list.iter().map(scalar).collect::<Option<Vec<_>>>()?
                }
                _ => vec![scalar(value)?],
            };
            for value in values {
                // A value with commas goes out as given, in one header line.
                out.append(name.clone(), HeaderValue::from_str(&value).ok()?);
            }
        }
    }
    if let Some(cookies) = object.get("cookies").filter(|c| !c.is_null()) {
        for cookie in cookies.as_array()? {
            out.append(
                header::SET_COOKIE,
                HeaderValue::from_str(cookie.as_str()?).ok()?,
            );
        }
    }
    // The platform sets the framing headers itself.
    out.remove(header::CONTENT_LENGTH);
    out.remove(header::TRANSFER_ENCODING);
    out.remove(header::CONNECTION);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_mapping() {
        let r = map_response(br#"{"statusCode":201,"headers":{"x-a":"1, 2","n":3},"cookies":["a=1","b=2; Path=/"],"body":"aGk=","isBase64Encoded":true}"#).unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get_all("x-a").iter().count(), 1);
        assert_eq!(r.headers()["x-a"], "1, 2");
        assert_eq!(r.headers()["n"], "3");
        assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
        let r = map_response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(map_response(b"not json").is_none());
        assert!(map_response(br#"{"statusCode":"abc"}"#).is_none());
        assert!(
            map_response(br#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#).is_none()
        );
        assert!(map_response(br#"{"statusCode":200,"headers":{"a":["1","2"]}}"#).is_none());
    }

    #[test]
    fn prelude_heads_take_lists() {
        let prelude = serde_json::json!({
            "statusCode": 206,
            "headers": {"x-a": ["1", "2"], "content-type": "text/plain"},
            "cookies": ["c=1"],
        });
        let head = response_head(prelude.as_object().unwrap(), HeaderValues::SingleOrList).unwrap();
        assert_eq!(head.status(), 206);
        let values: Vec<_> = head.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(head.headers()["set-cookie"], "c=1");
        let empty = serde_json::Map::new();
        assert_eq!(
            response_head(&empty, HeaderValues::SingleOrList)
                .unwrap()
                .status(),
            200
        );
    }
}
