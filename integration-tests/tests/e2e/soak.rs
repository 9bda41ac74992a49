//! A bounded soak of the response function: a hostile agent sends random and
//! hostile messages (unknown request ids, another tunnel's in-flight id,
//! protocol 1's chunk messages and heads, malformed and large text) through the
//! emulator to the real response binary and the real store, while another
//! tunnel's visitors keep getting their own answers. Local only: the
//! attacker reads the victim's request id from forwarding's log, as one who
//! sniffed it would know it.

use aws_sdk_dynamodb::types::AttributeValue;
use itest::{LocalService, TestEnv};
use serde_json::{Value, json};

use crate::support::{PATIENCE, RawAgent, header_values, the_pending_request_of, visitor};

/// Hostile messages sent; each at most a 32 KB WebSocket frame (API Gateway
/// closes the connection on a larger one).
const MESSAGES: usize = 300;
/// Visitor requests to the victim's tunnel while the messages go out.
const VISITS: usize = 20;
/// A fixed seed: a failure replays exactly.
const SEED: u64 = 0x0005_eed0_f147;

/// splitmix64: enough randomness for a soak, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn text(&mut self, max: u64) -> String {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| char::from_u32(self.below(0x800) as u32).unwrap_or('?'))
            .collect()
    }
}

/// One hostile message aimed at `target` (another tunnel's pending request).
fn hostile(rng: &mut Rng, target: &str) -> String {
    let request_id = match rng.below(4) {
        0 | 1 => json!(target),
        2 => json!(uuid::Uuid::new_v4().to_string()),
        _ => json!(rng.text(40)),
    };
    let number = |rng: &mut Rng| match rng.below(4) {
        0 => json!(rng.below(60)),
        1 => json!(u32::MAX),
        2 => json!(-(rng.below(1000) as i64)),
        _ => json!(rng.text(6)),
    };
    let data = |rng: &mut Rng| match rng.below(3) {
        0 => json!(protocol::encode_body(&vec![
            0x41;
            rng.below(20_000) as usize
        ])),
        1 => json!(rng.text(200)),
        _ => json!("!!not base64!!"),
    };
    let message = match rng.below(6) {
        0 => json!({"type": "http_response", "request_id": request_id,
            "status_code": 200, "headers": {"x-forged": ["yes"]}, "body": data(rng)}),
        1 => json!({"type": "http_response", "request_id": request_id,
            "status_code": number(rng), "body": "",
            "body_chunks": {"count": number(rng), "length": number(rng)}}),
        2 | 3 => json!({"type": "body_chunk", "request_id": request_id,
            "index": number(rng), "data": data(rng)}),
        4 => json!({"type": "error", "request_id": request_id,
            "code": "upstream_unreachable", "message": rng.text(100)}),
        _ => Value::String(rng.text(300)),
    };
    let text = match message {
        Value::String(garbage) => garbage,
        message => message.to_string(),
    };
    // Sometimes cut short: malformed JSON.
    if rng.below(8) == 0 {
        text.chars().take(text.chars().count() / 2).collect()
    } else {
        text
    }
}

#[tokio::test]
async fn hostile_agent_messages_leave_another_tunnels_requests_intact() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("reading the pending-requests table") else {
        return Ok(());
    };
    let service = LocalService::start("victim").await?;
    let victim = env.expose(&service.port()).await?;
    let mut attacker = RawAgent::connect(&env).await?;

    // A victim request held by its local service: the attacker's target.
    let held_url = format!("{}/gate/held", victim.public_url());
    let held = tokio::spawn(async move { visitor().get(held_url).send().await });
    service
        .next_held(PATIENCE)
        .await
        .expect("the held request reached the service");
    let target = the_pending_request_of(stack, victim.connection_id()).await?;

    // The victim's visitors, while the messages go out.
    let base = victim.public_url().to_string();
    let visits = tokio::spawn(async move {
        let client = visitor();
        for i in 0..VISITS {
            let response = client
                .post(format!("{base}/visit/{i}"))
                .header("content-type", "text/plain")
                .body(format!("visit {i}"))
                .send()
                .await?;
            anyhow::ensure!(response.status() == 200, "visit {i}: {}", response.status());
            anyhow::ensure!(
                header_values(&response, "x-service") == ["victim"],
                "visit {i}"
            );
            let echo: Value = response.json().await?;
            anyhow::ensure!(
                echo["body_base64"] == protocol::encode_body(format!("visit {i}").as_bytes()),
                "visit {i} got another body: {echo}"
            );
        }
        anyhow::Ok(())
    });

    let mut rng = Rng(SEED);
    for _ in 0..MESSAGES {
        attacker.send_text(&hostile(&mut rng, &target)).await?;
    }
    // Still connected, and (the emulator queues invocations in order) every
    // message before this ping has been taken up.
    attacker.round_trip().await?;
    visits.await??;

    // Nothing the attacker sent landed under the victim's connection: every
    // answer item is keyed by the connection that sent it.
    let victim_key = handlers::store::answer_key(&target, victim.connection_id());
    let still = stack
        .dynamodb()
        .get_item()
        .table_name(stack.tables().pending())
        .key("requestId", AttributeValue::S(victim_key))
        .consistent_read(true)
        .send()
        .await?;
    assert!(
        still.item().is_none(),
        "the held request was answered: {still:?}"
    );
    let items = stack
        .dynamodb()
        .scan()
        .table_name(stack.tables().pending())
        .send()
        .await?;
    let attacker_suffix = format!("#{}", attacker.established.connection_id);
    for item in items.items() {
        let key = item["requestId"].as_s().map(String::as_str).unwrap_or("");
        let ours = key.ends_with(&attacker_suffix)
            || key.ends_with(&format!("#{}", victim.connection_id()));
        assert!(ours, "an item under another connection's key: {key}");
    }

    service.open_gates();
    let response = held.await??;
    assert_eq!(response.status(), 200);
    assert!(header_values(&response, "x-forged").is_empty());
    assert_eq!(header_values(&response, "x-service"), ["victim"]);
    let echo: Value = response.json().await?;
    assert_eq!(echo["uri"], "/gate/held");
    Ok(())
}
