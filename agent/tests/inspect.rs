//! The request inspector's API against a real agent: requests come from the
//! in-process tunnel server, the local axum service answers, the inspector
//! serves on an ephemeral port and is read over real HTTP.

mod support;

use std::time::Duration;

use agent::inspect::{Inspector, Limits};
use protocol::{ErrorCode, Message};
use serde_json::{Value, json};
use support::*;

/// The inspector's HTTP side, as a script or the page would use it.
struct Api {
    base: String,
    http: reqwest::Client,
    _server: agent::inspect::InspectServer,
}

impl Api {
    async fn start(inspector: &Inspector) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = inspector.serve(listener);
        Api {
            base: server.url(),
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let response = within("the inspector", request.send()).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        (status, headers, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, json) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {json}");
        json
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        let (status, _, body) = self.send(request).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

fn body_of(v: &Value) -> Vec<u8> {
    protocol::decode_body(v["base64"].as_str().unwrap()).unwrap()
}

async fn with_inspector(
    limits: Limits,
    tweak: impl FnOnce(&mut agent::Config),
) -> (Setup, Inspector, Api) {
    let inspector = Inspector::new(limits);
    let api = Api::start(&inspector).await;
    let for_agent = inspector.clone();
    let s = setup_with(tweak, move |c| {
        agent::Agent::start_with_inspector(c, for_agent)
    })
    .await;
    (s, inspector, api)
}

fn post_hook(id: &str, body: &[u8]) -> protocol::HttpRequest {
    let mut req = with_headers(
        request(id, "POST", "/inspect/hook?event=paid&x=1"),
        &[
            ("host", &["abc123.tunnel.test"]),
            ("content-type", &["application/json"]),
            ("x-signature", &["t=1,v1=abc"]),
            ("accept", &["a", "b"]),
        ],
    );
    req.body = protocol::encode_body(body);
    req.timestamp = 1_700_000_000_000;
    req
}

#[tokio::test]
async fn captures_the_request_as_received_and_the_response_as_given() {
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |_| {}).await;
    let body = br#"{"amount":4200,"currency":"eur"}"#;
    expect_response(s.conn.roundtrip(post_hook("r1", body)).await);

    let list = api.ok("/api/requests").await;
    let items = list["requests"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(item["method"], "POST");
    assert_eq!(item["uri"], "/inspect/hook?event=paid&x=1");
    assert_eq!(item["state"], "answered");
    assert_eq!(item["status"], 200);
    assert_eq!(item["request_size"], body.len());
    assert_eq!(item["request_content_type"], "application/json");
    assert_eq!(item["response_content_type"], "application/json");
    assert_eq!(item["replay_of"], Value::Null);
    assert!(item["duration_ms"].as_f64().unwrap() >= 0.0);

    let id = item["id"].as_u64().unwrap();
    let detail = api.ok(&format!("/api/requests/{id}")).await;
    assert_eq!(body_of(&detail["request"]["body"]), body);
    let headers = &detail["request"]["headers"];
    assert!(
        headers
            .as_array()
            .unwrap()
            .contains(&json!(["accept", "a"])),
        "{headers}"
    );
    assert!(
        headers
            .as_array()
            .unwrap()
            .contains(&json!(["accept", "b"])),
        "{headers}"
    );
    assert!(
        headers
            .as_array()
            .unwrap()
            .contains(&json!(["x-signature", "t=1,v1=abc"])),
        "{headers}"
    );
    assert_eq!(detail["server_received_at"], "2023-11-14T22:13:20Z");
    // The response as the local service gave it: its echo of what it got.
    let response = &detail["response"];
    assert_eq!(response["status"], 200);
    assert_eq!(response["reason"], "OK");
    let echo: Value = serde_json::from_slice(&body_of(&response["body"])).unwrap();
    assert_eq!(echo["uri"], "/inspect/hook?event=paid&x=1");
    assert_eq!(
        protocol::decode_body(echo["body"].as_str().unwrap()).unwrap(),
        body
    );
    assert_eq!(response["body"]["truncated"], false);

    // The agent's status, as the page's header shows it.
    let status = api.ok("/api/status").await;
    assert_eq!(status["connection"], "connected");
    assert_eq!(status["public_url"], "https://abc123.tunnel.test");
    assert_eq!(status["target"], s.local.base.as_str());
    assert_eq!(status["captured"], 1);
}

#[tokio::test]
async fn replays_through_the_agent_exactly_or_edited_and_marks_the_replay() {
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |_| {}).await;
    let body = b"\x00binary\xffbody";
    expect_response(s.conn.roundtrip(post_hook("r1", body)).await);
    let id = api.ok("/api/requests").await["requests"][0]["id"]
        .as_u64()
        .unwrap();

    // As captured: the local service gets the same request again.
    let (status, replay) = api.post(&format!("/api/requests/{id}/replay"), "").await;
    assert_eq!(status, 201, "{replay}");
    assert_eq!(replay["replay_of"], id);
    assert_eq!(replay["status"], 200);
    assert!(
        replay["request_id"]
            .as_str()
            .unwrap()
            .starts_with("replay-")
    );
    let new_id = replay["id"].as_u64().unwrap();
    assert!(new_id > id);
    let detail = api.ok(&format!("/api/requests/{new_id}")).await;
    let echo: Value = serde_json::from_slice(&body_of(&detail["response"]["body"])).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/inspect/hook?event=paid&x=1");
    assert_eq!(
        protocol::decode_body(echo["body"].as_str().unwrap()).unwrap(),
        body
    );
    let seen_headers = echo["headers"].as_array().unwrap();
    assert!(
        seen_headers.contains(&json!(["x-signature", "t=1,v1=abc"])),
        "{echo}"
    );
    // Through the same forwarding rules as a visitor's request.
    assert!(
        seen_headers.contains(&json!(["x-forwarded-host", "abc123.tunnel.test"])),
        "{echo}"
    );

    // Edited.
    let edits = json!({
        "method": "PUT",
        "uri": "/inspect/edited?y=2",
        "headers": [["x-edited", "1"], ["content-type", "text/plain"]],
        "body": "changed",
    });
    let (status, replay) = api
        .post(&format!("/api/requests/{id}/replay"), &edits.to_string())
        .await;
    assert_eq!(status, 201, "{replay}");
    let detail = api.ok(&format!("/api/requests/{}", replay["id"])).await;
    let echo: Value = serde_json::from_slice(&body_of(&detail["response"]["body"])).unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["uri"], "/inspect/edited?y=2");
    assert_eq!(
        protocol::decode_body(echo["body"].as_str().unwrap()).unwrap(),
        b"changed"
    );
    let seen_headers = echo["headers"].as_array().unwrap();
    assert!(seen_headers.contains(&json!(["x-edited", "1"])), "{echo}");
    assert!(
        !seen_headers.iter().any(|h| h[0] == "x-signature"),
        "{echo}"
    );

    // Newest first, replays marked; the filter finds them.
    let list = api.ok("/api/requests").await;
    let ids: Vec<u64> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [new_id + 1, new_id, id]);
    let replays = api.ok("/api/requests?replay=true").await;
    assert_eq!(replays["requests"].as_array().unwrap().len(), 2);
    let puts = api.ok("/api/requests?method=put&q=edited").await;
    assert_eq!(puts["requests"].as_array().unwrap().len(), 1);

    // Bad edits are refused before anything is sent.
    let (status, err) = api
        .post(
            &format!("/api/requests/{id}/replay"),
            r#"{"uri":"no-slash"}"#,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("must start with '/'"),
        "{err}"
    );
    let (status, err) = api
        .post(&format!("/api/requests/{id}/replay"), "{not json")
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("not valid JSON"),
        "{err}"
    );
    let (status, _) = api.post("/api/requests/999/replay", "").await;
    assert_eq!(status, 404);
    assert_eq!(
        api.ok("/api/requests").await["requests"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// A replay counts against `--max-in-flight` like a visitor's request: with
/// every slot taken it is refused (503, saying why) before anything reaches
/// the local service, and a replay in flight takes a slot from visitors.
#[tokio::test]
async fn replays_count_against_the_in_flight_cap() {
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |c| c.max_in_flight = 1).await;
    expect_response(s.conn.roundtrip(post_hook("r1", b"x")).await);
    let id = api.ok("/api/requests").await["requests"][0]["id"]
        .as_u64()
        .unwrap();
    let hits = || s.local.state.hits.load(std::sync::atomic::Ordering::SeqCst);

    // A visitor's request holds the one slot: the replay is refused.
    s.conn
        .send(&Message::HttpRequest(request("slow", "GET", "/gate")))
        .await;
    within(
        "the request to reach the service",
        s.local.state.entered.notified(),
    )
    .await;
    let before = hits();
    let (status, err) = api.post(&format!("/api/requests/{id}/replay"), "").await;
    assert_eq!(status, 503, "{err}");
    let message = err["error"].as_str().unwrap();
    assert!(
        message.contains("--max-in-flight") && message.contains("try the replay again"),
        "{err}"
    );
    assert_eq!(
        hits(),
        before,
        "the refused replay reached the local service"
    );
    let replays = api.ok("/api/requests?replay=true").await;
    assert_eq!(
        replays["requests"].as_array().unwrap().len(),
        0,
        "{replays}"
    );
    s.local.state.gate.add_permits(1);
    assert_eq!(
        expect_response(s.conn.recv_answer().await).request_id,
        "slow"
    );

    // A replay holds the slot: a visitor's request is refused meanwhile.
    let url = format!("{}/api/requests/{id}/replay", api.base);
    let http = api.http.clone();
    let replay = tokio::spawn(async move {
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .body(json!({"method": "GET", "uri": "/gate", "body": ""}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        (status, body)
    });
    within(
        "the replay to reach the service",
        s.local.state.entered.notified(),
    )
    .await;
    let e = expect_error(s.conn.roundtrip(request("c", "GET", "/big/1")).await);
    assert_eq!(e.code, ErrorCode::Overloaded);
    s.local.state.gate.add_permits(1);
    let (status, replayed) = within("the replay", replay).await.unwrap();
    assert_eq!(status, 201, "{replayed}");
    assert_eq!(replayed["status"], 200, "{replayed}");
    // Its slot is free again.
    let r = expect_response(s.conn.roundtrip(request("d", "GET", "/big/1")).await);
    assert_eq!(r.status_code, 200);
}

#[tokio::test]
async fn keeps_within_the_limits_and_shows_truncation() {
    let limits = Limits {
        max_requests: 2,
        max_body_bytes: 1000,
        body_limit: 8,
    };
    let (mut s, _inspector, api) = with_inspector(limits, |_| {}).await;
    for i in 0..3 {
        let body = format!("request body number {i}");
        expect_response(
            s.conn
                .roundtrip(post_hook(&format!("r{i}"), body.as_bytes()))
                .await,
        );
    }
    let list = api.ok("/api/requests").await;
    let items = list["requests"].as_array().unwrap();
    let ids: Vec<u64> = items.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [3, 2], "the oldest went first");
    let (status, gone) = api.get("/api/requests/1").await;
    assert_eq!(status, 404);
    assert!(
        gone["error"].as_str().unwrap().contains("dropped"),
        "{gone}"
    );

    let detail = api.ok("/api/requests/3").await;
    let body = &detail["request"]["body"];
    assert_eq!(body["size"], 21);
    assert_eq!(body["captured"], 8);
    assert_eq!(body["truncated"], true);
    assert_eq!(body_of(body), b"request ");
    assert_eq!(detail["truncated"], true);

    // Replaying a cut body as it was is impossible: said, not guessed.
    let (status, err) = api.post("/api/requests/3/replay", "").await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("--inspect-body-limit"),
        "{err}"
    );
    let (status, _) = api
        .post("/api/requests/3/replay", r#"{"body":"the whole body"}"#)
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn failures_are_captured_with_their_reason() {
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |c| {
        c.request_timeout = Duration::from_millis(200);
    })
    .await;
    let err = expect_error(s.conn.roundtrip(request("slow", "GET", "/never")).await);
    assert_eq!(err.code, ErrorCode::Timeout);
    let item = &api.ok("/api/requests?status=error").await["requests"][0];
    assert_eq!(item["state"], "failed");
    assert_eq!(item["status"], 504);
    assert!(
        item["error"].as_str().unwrap().contains("did not answer"),
        "{item}"
    );
    let detail = api.ok(&format!("/api/requests/{}", item["id"])).await;
    assert_eq!(detail["failure"]["code"], "timeout");
    assert_eq!(detail["response"], Value::Null);
}

#[tokio::test]
async fn a_request_cut_short_by_shutdown_is_marked_cancelled() {
    let (mut s, inspector, api) = with_inspector(Limits::default(), |c| {
        c.shutdown_grace = Duration::from_millis(50);
    })
    .await;
    s.conn
        .send(&Message::HttpRequest(request("held", "GET", "/never")))
        .await;
    within("the request to arrive", s.local.state.entered.notified()).await;
    assert_eq!(
        api.ok("/api/requests").await["requests"][0]["state"],
        "in_flight"
    );
    let agent = s.agent;
    let stop = tokio::spawn(agent.shutdown());
    // The agent fails the request to the server after the grace period.
    expect_error(s.conn.recv_answer().await);
    within("shutdown", stop).await.unwrap().unwrap();
    let item = &api.ok("/api/requests").await["requests"][0];
    assert_eq!(item["state"], "failed", "{item}");
    assert!(
        item["error"].as_str().unwrap().contains("cancelled"),
        "{item}"
    );
    // Replays need a running agent.
    let (status, err) = api
        .post(&format!("/api/requests/{}/replay", item["id"]), "")
        .await;
    assert_eq!(status, 503, "{err}");
    assert!(api.ok("/api/status").await["connection"] == "stopped");
    drop(inspector);
}

/// Reads server-sent events until `until` accepts one; returns them all.
async fn read_events(
    response: &mut reqwest::Response,
    buffer: &mut String,
    until: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    within("a live event", async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if name.is_empty() {
                    continue; // keep-alive comment
                }
                let value: Value = serde_json::from_str(&data).unwrap();
                let done = until(&name, &value);
                events.push((name, value));
                if done {
                    return;
                }
            }
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the event stream ended");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await;
    events
}

#[tokio::test]
async fn live_events_start_with_a_snapshot_then_follow_every_change() {
    let (mut s, _inspector, api) = with_inspector(
        Limits {
            max_requests: 1,
            ..Limits::default()
        },
        |_| {},
    )
    .await;
    expect_response(s.conn.roundtrip(post_hook("before", b"{}")).await);

    let mut events = within(
        "the event stream",
        api.http.get(format!("{}/api/events", api.base)).send(),
    )
    .await
    .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let first = read_events(&mut events, &mut buffer, |_, _| true).await;
    assert_eq!(first[0].0, "snapshot");
    assert_eq!(first[0].1["requests"][0]["id"], 1);
    assert_eq!(first[0].1["status"]["connection"], "connected");

    expect_response(s.conn.roundtrip(post_hook("after", b"{}")).await);
    let seen = read_events(&mut events, &mut buffer, |name, v| {
        name == "request" && v["state"] == "answered"
    })
    .await;
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    // Begun (in flight), the older one dropped (a ring of one), answered.
    assert_eq!(names, ["evicted", "request", "request"], "{seen:?}");
    assert_eq!(seen[0].1, json!([1]));
    assert_eq!(seen[1].1["state"], "in_flight");
    assert_eq!(seen[1].1["id"], 2);
    assert_eq!(seen[2].1["status"], 200);

    let (status, _, _) = api
        .send(api.http.delete(format!("{}/api/requests", api.base)))
        .await;
    assert_eq!(status, 204);
    let cleared = read_events(&mut events, &mut buffer, |name, _| name == "cleared").await;
    assert_eq!(cleared.len(), 1);
    assert!(
        api.ok("/api/requests").await["requests"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn requests_refused_at_the_edge_are_listed_live_without_bodies_and_not_replayable() {
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |_| {}).await;
    let mut events = within(
        "the event stream",
        api.http.get(format!("{}/api/events", api.base)).send(),
    )
    .await
    .unwrap();
    let mut buffer = String::new();
    read_events(&mut events, &mut buffer, |name, _| name == "snapshot").await;

    // The server's notice, as forwarding posts it when the policy refuses.
    s.conn
        .send(&Message::Rejected(protocol::policy::Rejected {
            method: "POST".into(),
            path: "/admin/users".into(),
            reason: "no valid basic-auth credentials".into(),
            source_ip: Some("203.0.113.7".into()),
            status: 401,
        }))
        .await;
    let seen = read_events(&mut events, &mut buffer, |name, _| name == "request").await;
    let live = &seen.last().unwrap().1;
    assert_eq!(live["state"], "refused", "{live}");
    assert_eq!(live["refused"]["at"], "edge");

    // The console saw it too: the same notice, one path.
    wait_event(&mut s.agent, |e| matches!(e, agent::Event::Rejected(_))).await;

    let list = api.ok("/api/requests?status=refused").await;
    let item = &list["requests"][0];
    assert_eq!(list["requests"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(item, live);
    assert_eq!(item["method"], "POST");
    assert_eq!(item["uri"], "/admin/users");
    assert_eq!(item["status"], 401);
    assert_eq!(item["refused"]["reason"], "no valid basic-auth credentials");
    assert_eq!(item["refused"]["source_ip"], "203.0.113.7");
    assert_eq!(item["request_size"], 0);
    assert_eq!(item["response_size"], Value::Null);
    assert_eq!(item["duration_ms"], Value::Null);
    assert!(
        item["started_at"].as_str().unwrap().ends_with('Z'),
        "{item}"
    );

    let id = item["id"].as_u64().unwrap();
    let detail = api.ok(&format!("/api/requests/{id}")).await;
    assert_eq!(detail["request"]["headers"], json!([]));
    assert_eq!(detail["request"]["body"]["size"], 0);
    assert_eq!(detail["request"]["body"]["base64"], "");
    assert_eq!(detail["response"], Value::Null);
    assert_eq!(detail["failure"], Value::Null);

    // The local service never saw it: nothing to replay, as is or edited.
    for edits in ["", r#"{"body":"x"}"#] {
        let (status, err) = api.post(&format!("/api/requests/{id}/replay"), edits).await;
        assert_eq!(status, 409, "{err}");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("refused at the edge"),
            "{err}"
        );
    }
    assert_eq!(
        api.ok("/api/requests").await["requests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.local.state.hits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn curl_har_and_body_downloads() {
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |_| {}).await;
    expect_response(s.conn.roundtrip(post_hook("r1", br#"{"it's":1}"#)).await);

    let (status, headers, curl) = api
        .send(api.http.get(format!("{}/api/requests/1/curl", api.base)))
        .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let curl = String::from_utf8(curl).unwrap();
    assert!(
        curl.starts_with("curl -X 'POST' 'https://abc123.tunnel.test/inspect/hook?event=paid&x=1'"),
        "{curl}"
    );
    assert!(curl.contains("-H 'x-signature: t=1,v1=abc'"), "{curl}");
    assert!(!curl.contains("host:"), "{curl}");
    assert!(curl.contains(r#"--data-binary '{"it'\''s":1}'"#), "{curl}");

    let har = api.ok("/api/har").await;
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["request"]["url"],
        "https://abc123.tunnel.test/inspect/hook?event=paid&x=1"
    );
    assert_eq!(entries[0]["response"]["status"], 200);

    let (status, headers, bytes) = api
        .send(api.http.get(format!(
            "{}/api/requests/1/request/body?download=1",
            api.base
        )))
        .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, br#"{"it's":1}"#);
    // Captured content is never served as something a browser would run.
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"request-1.json\""
    );
    let (status, err) = api.get("/api/requests/1/other/body").await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = api.get("/api/requests/x").await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"].as_str().unwrap().contains("not a request id"));
}

#[tokio::test]
async fn the_page_is_embedded_and_other_sites_are_refused() {
    let inspector = Inspector::new(Limits::default());
    let api = Api::start(&inspector).await;
    let (status, headers, html) = api.send(api.http.get(&api.base)).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("http"),
        "{csp}"
    );
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains(r#"<script src="/app.js""#), "{html}");
    assert!(!html.contains("https://"), "no CDN: {html}");
    for (path, kind) in [
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = api.send(api.http.get(format!("{}{path}", api.base))).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(!body.is_empty());
        assert!(
            !String::from_utf8_lossy(&body).contains("https://"),
            "{path} loads nothing from the network"
        );
    }
    let (status, err) = api.get("/api/nope").await;
    assert_eq!(status, 404, "{err}");

    // DNS rebinding: a page on evil.example resolving to 127.0.0.1.
    let (status, _, _) = api
        .send(
            api.http
                .get(format!("{}/api/requests", api.base))
                .header("host", "evil.example:4040"),
        )
        .await;
    assert_eq!(status, 403);
    // Another site's page reading the API through the visitor's browser.
    let (status, _, _) = api
        .send(
            api.http
                .get(format!("{}/api/requests", api.base))
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(status, 403);
    // Another origin trying to change something.
    let host = api.base.trim_start_matches("http://").to_owned();
    let (status, _, _) = api
        .send(
            api.http
                .delete(format!("{}/api/requests", api.base))
                .header("origin", "http://127.0.0.1:3000"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = api
        .send(
            api.http
                .delete(format!("{}/api/requests", api.base))
                .header("origin", format!("http://{host}"))
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(status, 204);
    // A script without a browser (no Origin) may.
    let (status, _, _) = api
        .send(api.http.delete(format!("{}/api/requests", api.base)))
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn save_appends_one_private_json_line_per_finished_request_not_refused_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("captures.jsonl");
    let saver = agent::inspect::save::Saver::open(&path).unwrap();
    let inspector = Inspector::with_saver(Limits::default(), saver);
    let local = LocalService::start().await;
    let config = config("ws://127.0.0.1:1/unused", &local.base);
    let forwarder = agent::forward::Forwarder::new(&config)
        .unwrap()
        .with_recorder(inspector.clone());
    forwarder.forward(post_hook("r1", b"saved body")).await;
    // Refused at the edge: listed, but not an exchange to save.
    inspector.refused(&protocol::policy::Rejected {
        method: "GET".into(),
        path: "/admin".into(),
        reason: "source IP not allowed".into(),
        source_ip: None,
        status: 403,
    });
    assert_eq!(inspector.summaries(&Default::default()).len(), 2);
    forwarder.forward(post_hook("r2", b"second")).await;
    // The last holder of the inspector gone, every queued line is written.
    drop((forwarder, config, inspector));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["request_id"], "r1");
    assert_eq!(body_of(&lines[0]["request"]["body"]), b"saved body");
    assert_eq!(lines[0]["response"]["status"], 200);
    assert_eq!(lines[1]["request_id"], "r2");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn without_an_inspector_nothing_is_captured() {
    // `Agent::start` has none: the agent works as before.
    let mut s = setup(|_| {}).await;
    expect_response(s.conn.roundtrip(post_hook("r1", b"x")).await);
}

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_captured_reaches_the_logs() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("agent=trace"))
        .with_writer(move || sink.clone())
        .finish();
    // Every task of this single-threaded runtime logs into `logs`.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (mut s, _inspector, api) = with_inspector(Limits::default(), |c| {
        c.request_timeout = Duration::from_millis(300);
    })
    .await;
    let mut req = with_headers(
        post_hook("r1", b"secret-body-8841"),
        &[("x-api-key", &["secret-header-5512"])],
    );
    req.uri = "/inspect/hook?token=secret-query-7730".into();
    expect_response(s.conn.roundtrip(req).await);
    expect_error(
        s.conn
            .roundtrip(request("slow", "GET", "/never?k=secret-query-7730"))
            .await,
    );
    api.ok("/api/requests/1").await;
    api.ok("/api/har").await;
    let (status, _) = api.post("/api/requests/1/replay", "").await;
    assert_eq!(status, 201);
    let (status, _) = api
        .post(
            "/api/requests/1/replay",
            r#"{"body":"secret-body-8841","uri":"bad"}"#,
        )
        .await;
    assert_eq!(status, 400);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request"),
        "the agent logged nothing at all: {logs}"
    );
    for secret in [
        "secret-body-8841",
        "secret-header-5512",
        "secret-query-7730",
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}
