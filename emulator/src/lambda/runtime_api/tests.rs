//! The Runtime API over HTTP, without a process: reqwest plays the function.

mod streaming;

use super::*;
use crate::{
    serve::serve,
    tasks::{AbortOnDrop, Tasks},
};

const BASE: &str = "/2018-06-01/runtime";

struct Fixture {
    addr: std::net::SocketAddr,
    base: String,
    queue: mpsc::Sender<Pending>,
    state: Arc<RuntimeState>,
    _server: AbortOnDrop,
    client: reqwest::Client,
}

async fn fixture() -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (queue, rx) = mpsc::channel(1);
    let state = Arc::new(RuntimeState::new(
        "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        rx,
        Instant::now(),
        Arc::default(),
        Tasks::default(),
    ));
    let served = state.clone();
    let server = serve(listener, Tasks::default(), "test", false, move |_, req| {
        handle(served.clone(), req)
    });
    Fixture {
        addr,
        base: format!("http://{addr}{BASE}"),
        queue,
        state,
        _server: server,
        client: reqwest::Client::new(),
    }
}

type ReplyRx = oneshot::Receiver<Result<Reply, InvokeError>>;

async fn enqueue(
    f: &Fixture,
    request_id: &str,
    timeout: Duration,
) -> (oneshot::Receiver<Instant>, ReplyRx) {
    enqueue_with(f, request_id, timeout, ClientDisconnect::Continue).await
}

async fn enqueue_with(
    f: &Fixture,
    request_id: &str,
    timeout: Duration,
    client_disconnect: ClientDisconnect,
) -> (oneshot::Receiver<Instant>, ReplyRx) {
    let (started, started_rx) = oneshot::channel();
    let (reply, reply_rx) = oneshot::channel();
    let pending = Pending {
        request_id: request_id.into(),
        payload: Bytes::from_static(b"{\"a\":1}"),
        timeout,
        client_disconnect,
        started,
        reply,
    };
    f.queue.send(pending).await.unwrap();
    (started_rx, reply_rx)
}

#[tokio::test]
async fn next_blocks_until_an_event_and_sends_absolute_deadlines() {
    let f = fixture().await;
    let next = tokio::spawn(f.client.get(format!("{}/invocation/next", f.base)).send());
    // Nothing queued: `/next` must still be waiting (never a 204).
    tokio::task::yield_now().await;
    assert!(!next.is_finished());
    let before = now_epoch_ms();
    let (started, _reply) = enqueue(&f, "req-1", Duration::from_secs(3)).await;
    let response = next.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("lambda-runtime-aws-request-id"), "req-1");
    assert_eq!(
        header("lambda-runtime-invoked-function-arn"),
        "arn:aws:lambda:us-east-1:123456789012:function:f"
    );
    assert!(header("lambda-runtime-trace-id").starts_with("Root=1-"));
    let deadline: i64 = header("lambda-runtime-deadline-ms").parse().unwrap();
    assert!(
        deadline >= before + 3_000 && deadline <= now_epoch_ms() + 3_000,
        "absolute epoch ms"
    );
    assert!(started.await.is_ok());
    assert_eq!(response.text().await.unwrap(), "{\"a\":1}");
    assert_eq!(f.state.counters.snapshot().init_durations_ms.len(), 1);
}

#[tokio::test]
async fn results_errors_and_limits() {
    let f = fixture().await;
    let next = |f: &Fixture| f.client.get(format!("{}/invocation/next", f.base)).send();

    let (_started, reply) = enqueue(&f, "ok", Duration::from_secs(3)).await;
    next(&f).await.unwrap();
    let response = f
        .client
        .post(format!("{}/invocation/ok/response", f.base))
        .body("done")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    match reply.await.unwrap() {
        Ok(Reply::Buffered(payload)) => assert_eq!(payload, Bytes::from_static(b"done")),
        other => panic!("{other:?}"),
    }
    // A second result for the same invocation is refused.
    let response = f
        .client
        .post(format!("{}/invocation/ok/response", f.base))
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let (_started, reply) = enqueue(&f, "err", Duration::from_secs(3)).await;
    next(&f).await.unwrap();
    let response = f
        .client
        .post(format!("{}/invocation/err/error", f.base))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.Unhandled")
        .body(r#"{"errorType":"MyError","errorMessage":"boom"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    match reply.await.unwrap() {
        Err(InvokeError::Function {
            error_type,
            message,
        }) => assert_eq!((error_type.as_str(), message.as_str()), ("MyError", "boom")),
        other => panic!("{other:?}"),
    }

    let (_started, reply) = enqueue(&f, "big", Duration::from_secs(3)).await;
    next(&f).await.unwrap();
    let response = f
        .client
        .post(format!("{}/invocation/big/response", f.base))
        .body(vec![b'a'; LAMBDA_PAYLOAD_MAX + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(matches!(
        reply.await.unwrap(),
        Err(InvokeError::ResponseTooLarge)
    ));

    let response = f
        .client
        .post(format!("{}/init/error", f.base))
        .body(r#"{"errorType":"InitFailed","errorMessage":"no config"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(
        f.state.init_error.lock().unwrap().clone(),
        Some(("InitFailed".to_owned(), "no config".to_owned()))
    );
    // The worker is told to kill the process.
    tokio::time::timeout(Duration::from_secs(5), f.state.kill.notified())
        .await
        .unwrap();
}
