//! A function's payload format 2.0 result → the client's response.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::Value;

use crate::bodies::{Body, json_response};

/// Maps a function result to the client's response; `None` = invalid result (500).
pub(crate) fn map_response(payload: &[u8]) -> Option<Response<Body>> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // Valid JSON without a statusCode: a 200 with that JSON as the body.
        let mut response = json_response(StatusCode::OK, Bytes::copy_from_slice(payload));
        *response.status_mut() = StatusCode::OK;
        return Some(response);
    };
    let status = object
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())?;
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
    let mut response = Response::new(http_body_util::Full::new(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    if let Some(headers) = object.get("headers").filter(|h| !h.is_null()) {
        for (name, value) in headers.as_object()? {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let name = HeaderName::try_from(name.as_str()).ok()?;
            // A value with commas goes out as given, in one header line.
            out.append(name, HeaderValue::from_str(&value).ok()?);
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
    // API Gateway sets the framing headers itself.
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
    }
}
