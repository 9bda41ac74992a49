//! A chunked answer read back: the agent sent the head with `body_chunks`
//! and the body as chunk items (the storage scheme is in
//! [`crate::store::chunks`]); the visitor gets the whole body.

use protocol::HttpResponse;
use tracing::debug;

use super::error::ForwardError;
use crate::store::ChunkStore;

/// A completed response whose body came in chunks, with its body assembled
/// from the chunk items `connection_id` wrote; any other response as it is.
pub(super) async fn with_body<P: ChunkStore + Sync>(
    pending: &P,
    connection_id: &str,
    mut response: HttpResponse,
) -> Result<HttpResponse, ForwardError> {
    let Some(head) = response.body_chunks.take() else {
        return Ok(response);
    };
    head.validate().map_err(ForwardError::InvalidHead)?;
    let chunks = pending
        .get_chunks(&response.request_id, connection_id, head.count)
        .await
        .map_err(ForwardError::ReadChunks)?;
    let body = protocol::chunk::assemble(head, chunks).map_err(ForwardError::IncompleteBody)?;
    debug!(
        body_bytes = body.len(),
        chunks = head.count,
        "chunked response assembled"
    );
    response.body = protocol::encode_body(&body);
    Ok(response)
}
