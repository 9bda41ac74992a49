//! Routing modes and browser origins, end to end on the local stack (the
//! real forwarding binary under the emulator): path routing serves tunnels
//! by path only, host routing by Host only, and a tunnel's `Set-Cookie` can
//! reach no other tunnel in either (no `Domain`; with path routing, a
//! `Path` inside the tunnel's prefix).
//!
//! Local only: it chooses `ROUTING` and sends Host headers.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use handlers::config::Routing;
use itest::{LocalService, Stack, StackConfig, Tunnel};

/// A safety net for waits, never a synchronisation device.
const PATIENCE: Duration = Duration::from_secs(30);

fn visitor() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .expect("reqwest client")
}

fn values(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

async fn stack(routing: Routing) -> anyhow::Result<Stack> {
    Ok(Stack::start(StackConfig {
        routing,
        ..StackConfig::for_tests()
    })
    .await?)
}

async fn two_tunnels(
    stack: &Stack,
) -> anyhow::Result<((Tunnel, LocalService), (Tunnel, LocalService))> {
    let (one, two) = (
        LocalService::start("one").await?,
        LocalService::start("two").await?,
    );
    let (tunnel_one, tunnel_two) =
        tokio::try_join!(stack.expose(&one.port()), stack.expose(&two.port()))?;
    assert_ne!(tunnel_one.subdomain(), tunnel_two.subdomain());
    Ok(((tunnel_one, one), (tunnel_two, two)))
}

#[tokio::test]
async fn path_routing_serves_each_tunnel_by_path_only() -> anyhow::Result<()> {
    let stack = stack(Routing::Path).await?;
    let client = visitor();
    let ((tunnel_one, one), (tunnel_two, two)) = two_tunnels(&stack).await?;
    for (tunnel, service) in [(&tunnel_one, &one), (&tunnel_two, &two)] {
        assert_eq!(tunnel.public_url(), stack.path_url(tunnel.subdomain()));
        let response = client
            .get(format!("{}/a/b?c=d", tunnel.public_url()))
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        assert_eq!(values(&response, "x-service"), [service.name()]);
        assert_eq!(
            service.next_request(PATIENCE).await.expect("seen").uri,
            "/a/b?c=d"
        );
    }
    // The Host is ignored: the other tunnel's name in it changes nothing,
    // and it alone reaches no tunnel.
    let response = client
        .get(format!("{}/x", tunnel_one.public_url()))
        .header("host", stack.host_for(tunnel_two.subdomain()))
        .send()
        .await?;
    assert_eq!(values(&response, "x-service"), ["one"]);
    one.next_request(PATIENCE).await.expect("seen");
    let response = client
        .get(format!("{}/", stack.http_url()))
        .header("host", stack.host_for(tunnel_two.subdomain()))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    assert!(values(&response, "x-service").is_empty());
    Ok(())
}

#[tokio::test]
async fn host_routing_serves_each_tunnel_by_host_only() -> anyhow::Result<()> {
    let stack = stack(Routing::Host).await?;
    let ((tunnel_one, one), (tunnel_two, two)) = two_tunnels(&stack).await?;
    for (tunnel, service) in [(&tunnel_one, &one), (&tunnel_two, &two)] {
        let host = stack.host_for(tunnel.subdomain());
        // The public URL as the agent printed it, resolved as browsers and
        // curl resolve `*.localhost`.
        assert_eq!(
            tunnel.public_url(),
            format!("http://{host}:{}", stack.http_addr().port())
        );
        let client = reqwest::Client::builder()
            .timeout(PATIENCE)
            .resolve(&host, stack.http_addr())
            .build()?;
        let response = client
            .get(format!(
                "{}/{}/b?c=d",
                tunnel.public_url(),
                tunnel.subdomain()
            ))
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        assert_eq!(values(&response, "x-service"), [service.name()]);
        // The whole path is the service's, even one that names a tunnel.
        let seen = service.next_request(PATIENCE).await.expect("seen");
        assert_eq!(seen.uri, format!("/{}/b?c=d", tunnel.subdomain()));

        for host in [host.to_uppercase(), format!("{host}:443")] {
            let response = visitor()
                .get(format!("{}/x", stack.http_url()))
                .header("host", &host)
                .send()
                .await?;
            assert_eq!(values(&response, "x-service"), [service.name()], "{host}");
            service.next_request(PATIENCE).await.expect("seen");
        }
    }
    // A tunnel name nobody holds: 404, nothing forwarded.
    let response = visitor()
        .get(format!("{}/x", stack.http_url()))
        .header("host", stack.host_for(&protocol::generate_subdomain()))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    assert!(values(&response, "x-service").is_empty());
    // No path routing: not on the emulator's own host (the execute-api URL
    // is disabled on AWS), not on the bare domain (no apex on AWS).
    for host in [
        stack.http_addr().to_string(),
        stack.domain().to_string(),
        format!("{}.evil{}", tunnel_one.subdomain(), stack.domain()),
    ] {
        let response = visitor()
            .get(format!("{}/{}/x", stack.http_url(), tunnel_one.subdomain()))
            .header("host", &host)
            .send()
            .await?;
        assert_eq!(response.status(), 404, "Host: {host}");
        assert!(values(&response, "x-service").is_empty());
        assert_eq!(
            response.text().await?,
            format!(
                "No tunnel here: tunnels are served at <name>.{}.\n",
                stack.domain()
            )
        );
    }
    Ok(())
}

/// `Set-Cookie` values an app (or a hostile agent) might send to plant
/// cookies on every tunnel of the domain, in every spelling.
const HOSTILE: &[&str] = &[
    "a=1; Domain=tunnel.localhost; Path=/",
    "b=2; domain=.TUNNEL.LOCALHOST",
    "c=3; Domain=\"tunnel.localhost\"; HttpOnly",
    "d=4; Domain=x.tunnel.localhost; DOMAIN = tunnel.localhost; Secure",
    "e=5; Path=/app",
    "f=6",
];

/// A local service that answers every request with [`HOSTILE`].
async fn cookie_setter() -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback(|| async {
        let mut headers = HeaderMap::new();
        for cookie in HOSTILE {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
        }
        (headers, "cookies")
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, task))
}

#[tokio::test]
async fn no_set_cookie_reaches_beyond_its_tunnel() -> anyhow::Result<()> {
    let (port, server) = cookie_setter().await?;
    let port = port.to_string();

    // Host routing: every Domain goes, whatever its spelling; Path stays.
    let stack_host = stack(Routing::Host).await?;
    let tunnel = stack_host.expose(&port).await?;
    let response = visitor()
        .get(format!("{}/app/page", stack_host.http_url()))
        .header("host", stack_host.host_for(tunnel.subdomain()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        values(&response, "set-cookie"),
        [
            "a=1; Path=/",
            "b=2",
            "c=3; HttpOnly",
            "d=4; Secure",
            "e=5; Path=/app",
            "f=6"
        ]
    );

    // Path routing: no Domain either, and every Path inside the tunnel's
    // prefix (the default path of /<sub>/app/page made explicit).
    let stack_path = stack(Routing::Path).await?;
    let tunnel = stack_path.expose(&port).await?;
    let response = visitor()
        .get(format!("{}/app/page", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let prefix = format!("/{}", tunnel.subdomain());
    assert_eq!(
        values(&response, "set-cookie"),
        [
            format!("a=1; Path={prefix}"),
            format!("b=2; Path={prefix}/app"),
            format!("c=3; HttpOnly; Path={prefix}/app"),
            format!("d=4; Secure; Path={prefix}/app"),
            format!("e=5; Path={prefix}/app"),
            format!("f=6; Path={prefix}/app"),
        ]
    );
    server.abort();
    Ok(())
}
