//! [`PendingStore`] on DynamoDB: the answer items.

use protocol::HttpResponse;

use super::{DynamoPendingStore, get_n, get_s, n, s, sdk_error, written};
use crate::store::{
    PendingStore, StoreError, StoredAnswer, Written, answer_key, parse_response_data, response_data,
};

impl PendingStore for DynamoPendingStore {
    async fn put_answer(
        &self,
        connection_id: &str,
        response: &HttpResponse,
        ttl: i64,
    ) -> Result<Written, StoreError> {
        let key = answer_key(&response.request_id, connection_id);
        let data = response_data(&key, response)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("requestId", s(key))
            .item("responseData", s(data))
            .item("ttl", n(ttl))
            // Exactly once: a connection's second answer is refused.
            .condition_expression("attribute_not_exists(requestId)")
            .send()
            .await;
        written("DynamoDB PutItem", result)
    }

    async fn get_answer(
        &self,
        request_id: &str,
        connection_id: &str,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        let key = answer_key(request_id, connection_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("requestId", s(&key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let json = get_s(&item, &key, "responseData")?;
        Ok(Some(StoredAnswer {
            response: parse_response_data(&key, &json)?,
            ttl: get_n(&item, &key, "ttl")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use protocol::Headers;

    use super::*;

    /// The size DynamoDB bills an item by ("Item sizes and formats", Amazon
    /// DynamoDB Developer Guide): each attribute's name in UTF-8 bytes plus its
    /// value (a string's UTF-8 bytes; a number about one byte per two
    /// significant digits plus one).
    fn answer_item_bytes(connection_id: &str, response: &HttpResponse) -> usize {
        let key = answer_key(&response.request_id, connection_id);
        let data = serde_json::to_string(response).map_or(0, |j| j.len());
        let ttl_digits = 10;
        "requestId".len()
            + key.len()
            + "responseData".len()
            + data
            + "ttl".len()
            + ttl_digits / 2
            + 1
    }

    /// A 1 KB answer, as the agent stores one for the bench (a text body
    /// with the headers a local server sends), is one item of at most
    /// 2 KB: 2 write units, 1 read unit per poll.
    #[test]
    fn a_1_kb_answer_is_a_2_write_unit_item() {
        let mut headers = Headers::new();
        for (name, value) in [
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", "1024"),
            ("date", "Mon, 30 Nov 2026 20:18:10 GMT"),
        ] {
            headers.insert(name.into(), vec![value.into()]);
        }
        let body: Vec<u8> = (0..1024).map(|i| b'a' + (i % 26) as u8).collect();
        let response = HttpResponse {
            request_id: "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a".into(),
            status_code: 200,
            headers,
            body: protocol::encode_body(&body),
            processing_time_ms: 1,
            body_uploaded: None,
        };
        let bytes = answer_item_bytes("L0SM9cOFvHcCIhw=", &response);
        assert!((1024..=2048).contains(&bytes), "{bytes} bytes");
        println!("a 1 KB answer item: {bytes} bytes");
    }
}
