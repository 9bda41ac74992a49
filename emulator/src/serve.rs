//! Serving HTTP/1.1 on a listener: one task per connection, owned by a
//! [`Tasks`] set, until the accept loop is aborted.

use std::{
    convert::Infallible, error::Error as StdError, future::Future, net::SocketAddr, sync::Mutex,
};

use bytes::Bytes;
use http::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tracing::{Instrument as _, debug, info_span};

use crate::{
    header_case::HeaderCase,
    tasks::{AbortOnDrop, Tasks},
};

/// Serves HTTP/1.1 on `listener` with `handler` until the returned task is
/// aborted; connections live in `tasks`. With `keep_header_case` the first
/// request of each connection carries a [`HeaderCase`] extension.
pub(crate) fn serve<H, F, B>(
    listener: TcpListener,
    tasks: Tasks,
    name: &'static str,
    keep_header_case: bool,
    handler: H,
) -> AbortOnDrop
where
    H: Fn(SocketAddr, hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let conn_tasks = tasks.clone();
    AbortOnDrop(tokio::spawn(
        async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: keep serving.
                        debug!(%error, "accept failed");
                        tokio::task::yield_now().await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                conn_tasks.spawn(async move {
                    let case = if keep_header_case {
                        HeaderCase::peek(&stream).await
                    } else {
                        None
                    };
                    let first = Mutex::new(case);
                    let service = hyper::service::service_fn(move |mut req| {
                        if let Some(case) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            req.extensions_mut().insert(case);
                        }
                        let fut = handler(peer, req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if let Err(error) = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
        }
        .instrument(info_span!("listener", name)),
    ))
}
