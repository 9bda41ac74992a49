//! Parsing and validation of the configuration.

use super::*;

#[test]
fn parses_the_contracts_example_with_defaults() {
    let config = Config::from_toml_str(
        r#"
stage = "local"
[listen]
websocket = "127.0.0.1:0"
http = "127.0.0.1:0"
[limits]
idle_timeout_secs = 600
max_connection_age_secs = 7200
[[functions]]
name = "connect"
binary = "target/debug/connect"
[functions.environment]
WEBSOCKET_API_ENDPOINT = "${MANAGEMENT_ENDPOINT}"
[websocket.routes]
"$connect" = "connect"
[http]
function = "connect"
[[function_urls]]
function = "connect"
invoke_mode = "BUFFERED"
listen = "127.0.0.1:0"
client_disconnect = "continue"
"#,
    )
    .expect("parses");
    config.validate().expect("valid");
    assert_eq!(config.functions[0].timeout_secs, 30);
    assert_eq!(config.functions[0].concurrency, 10);
    assert_eq!(config.functions[0].memory_mb, 128);
    assert_eq!(config.http.as_ref().map(|h| h.timeout_secs), Some(30));
    // AWS's behaviour unless asked otherwise.
    assert_eq!(
        config.functions[0].over_concurrency,
        OverConcurrency::Throttle
    );
    assert!(!config.functions[0].manage_connections);
    assert_eq!(
        config.functions[0].disconnect_delivery,
        DisconnectDelivery::Deliver
    );
}

#[test]
fn parses_the_fidelity_settings() {
    let parse = |extra: &str| {
        Config::from_toml_str(&format!(
            "[[functions]]\nname = \"f\"\nbinary = \"b\"\n{extra}"
        ))
        .map(|c| c.functions[0].clone())
    };
    let f = parse(
        "over_concurrency = \"queue\"\nmanage_connections = true\ndisconnect_delivery = \"drop\"",
    )
    .unwrap();
    assert_eq!(f.over_concurrency, OverConcurrency::Queue);
    assert!(f.manage_connections);
    assert_eq!(f.disconnect_delivery, DisconnectDelivery::Drop);
    let f = parse("disconnect_delivery = { delay_ms = 2500 }").unwrap();
    assert_eq!(
        f.disconnect_delivery,
        DisconnectDelivery::Delay(Duration::from_millis(2500))
    );
    assert_eq!(
        parse("disconnect_delivery = \"deliver\"")
            .unwrap()
            .disconnect_delivery,
        DisconnectDelivery::Deliver
    );
    assert!(parse("disconnect_delivery = \"later\"").is_err());
    assert!(parse("over_concurrency = \"retry\"").is_err());
}

/// The shipped example parses and is valid (it documents every setting).
#[test]
fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/emulator.example.toml");
    let config = Config::from_toml_file(Path::new(path)).expect("parses");
    config.validate().expect("valid");
    assert!(config.functions[0].manage_connections);
    assert_eq!(config.function_urls[0].function, "echo");
}

#[test]
fn rejects_routes_to_unknown_functions() {
    let mut config = Config::new("local");
    config
        .websocket
        .routes
        .insert("$connect".into(), "nope".into());
    assert!(matches!(
        config.validate(),
        Err(EmulatorError::InvalidConfig(_))
    ));
}

#[test]
fn parses_function_urls_with_aws_defaults() {
    let config = Config::from_toml_str(
        r#"
[[functions]]
name = "a"
binary = "b"
[functions.environment]
OTHER = "${FUNCTION_URL:s}/path"
[[functions]]
name = "s"
binary = "b"
[[function_urls]]
function = "a"
[[function_urls]]
function = "s"
invoke_mode = "RESPONSE_STREAM"
listen = "127.0.0.1:0"
url_id = "abc123"
client_disconnect = "close_stream"
"#,
    )
    .expect("parses");
    config.validate().expect("valid");
    let [a, s] = &config.function_urls[..] else {
        panic!("two URLs")
    };
    assert_eq!(a.invoke_mode, InvokeMode::Buffered, "AWS's default");
    assert_eq!(
        a.client_disconnect,
        ClientDisconnect::Continue,
        "AWS's behaviour"
    );
    assert_eq!(a.url_id, None);
    assert_eq!(s.invoke_mode, InvokeMode::ResponseStream);
    assert_eq!(s.client_disconnect, ClientDisconnect::CloseStream);
    assert_eq!(s.url_id.as_deref(), Some("abc123"));
}

#[test]
fn rejects_bad_function_urls() {
    let parse = |extra: &str| {
        Config::from_toml_str(&format!(
            "[[functions]]\nname = \"f\"\nbinary = \"b\"\n{extra}"
        ))
    };
    for (extra, why) in [
        ("[[function_urls]]\nfunction = \"nope\"", "unknown function"),
        (
            "[[function_urls]]\nfunction = \"f\"\n[[function_urls]]\nfunction = \"f\"",
            "two URLs for one function",
        ),
        (
            "[[function_urls]]\nfunction = \"f\"\nurl_id = \"Upper\"",
            "url_id",
        ),
        (
            "[[function_urls]]\nfunction = \"f\"\nurl_id = \"\"",
            "empty url_id",
        ),
        (
            "[functions.environment]\nU = \"${FUNCTION_URL:f}\"",
            "placeholder of a function without a URL",
        ),
    ] {
        let config = parse(extra).expect(why);
        let error = config.validate().expect_err(why).to_string();
        assert!(error.starts_with("invalid config: "), "{why}: {error}");
    }
    assert!(parse("[[function_urls]]\nfunction = \"f\"\ninvoke_mode = \"buffered\"").is_err());
    assert!(parse("[[function_urls]]\nfunction = \"f\"\nclient_disconnect = \"kill\"").is_err());
}
