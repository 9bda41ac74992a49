//! The routes: each invokes the function the manifest says, through the
//! integrations, routes and invoke permissions the API modules build from
//! what the composition gives them.

use std::collections::BTreeMap;

use handlers::manifest;
use hcl::{Body, Value};

use crate::eval::Evaluator;
use crate::tree::{Tree, attribute, literal_str, source};

use super::{COMPOSITION, HTTP_MODULE, Scenario, WEBSOCKET_MODULE, composition};

/// The function key a placeholder like `module.function["connect"].invoke_arn` names.
fn function_of(value: Option<&Value>, output: &str) -> Option<String> {
    let text = value?.as_str()?;
    let rest = text.strip_prefix("module.function[\"")?;
    let (key, tail) = rest.split_once("\"]")?;
    (tail == format!(".{output}")).then(|| key.to_owned())
}

/// The functions behind the WebSocket routes and the HTTP API's $default.
fn wired_routes(eval: &Evaluator) -> Result<(BTreeMap<String, String>, String), String> {
    let routes = eval
        .module_argument("websocket_api", None, "routes")?
        .ok_or_else(|| format!("{COMPOSITION}: module websocket_api gets no routes"))?;
    let Value::Object(routes) = routes else {
        return Err(format!(
            "{COMPOSITION}: websocket_api routes is not a map: {routes}"
        ));
    };
    let mut websocket = BTreeMap::new();
    for (route, target) in &routes {
        let object = target.as_object();
        let by_name = function_of(object.and_then(|o| o.get("function_name")), "function_name");
        let by_arn = function_of(object.and_then(|o| o.get("invoke_arn")), "invoke_arn");
        match (by_name, by_arn) {
            (Some(name), Some(arn)) if name == arn => {
                websocket.insert(route.clone(), name);
            }
            _ => {
                return Err(format!(
                    "{COMPOSITION}: websocket route {route} must take function_name and invoke_arn from the same module.function instance, found {target}"
                ));
            }
        }
    }
    let http = eval
        .module_argument("http_api", None, "function")?
        .ok_or_else(|| format!("{COMPOSITION}: module http_api gets no function"))?;
    let object = http.as_object();
    let by_name = function_of(object.and_then(|o| o.get("function_name")), "function_name");
    let by_arn = function_of(object.and_then(|o| o.get("invoke_arn")), "invoke_arn");
    let http = match (by_name, by_arn) {
        (Some(name), Some(arn)) if name == arn => name,
        _ => {
            return Err(format!(
                "{COMPOSITION}: http_api function must take function_name and invoke_arn from the same module.function instance, found {http}"
            ));
        }
    };
    Ok((websocket, http))
}

/// The WebSocket routes and the HTTP API's $default route invoke the
/// functions the manifest says (`Function::routes`), and the API modules
/// turn what they are given into integrations, routes and invoke
/// permissions, each permission scoped to its stage and route.
pub fn routes(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let eval = try_or_report!(problems, composition(tree, Scenario::ExecuteApi));
    let (websocket, http) = try_or_report!(problems, wired_routes(&eval));
    const HTTP_ROUTE: &str = "$default";
    for function in manifest::FUNCTIONS {
        for route in function.routes {
            let on_websocket = websocket.get(*route).map(String::as_str) == Some(function.name);
            let on_http = *route == HTTP_ROUTE && http == function.name;
            if !on_websocket && !on_http {
                problems.push(format!(
                    "{COMPOSITION}: route {route} should invoke function {} (handlers::manifest), but WebSocket {route} invokes {:?} and the HTTP API $default invokes {http:?}",
                    function.name,
                    websocket.get(*route),
                ));
            }
        }
    }
    let owner = |route: &str, target: &str| {
        manifest::FUNCTIONS
            .iter()
            .any(|function| function.name == target && function.routes.contains(&route))
    };
    for (route, target) in &websocket {
        if !owner(route, target) {
            problems.push(format!(
                "{COMPOSITION}: WebSocket route {route} invokes {target}, whose manifest routes are {:?}",
                manifest::FUNCTIONS.iter().find(|f| f.name == target).map(|f| f.routes)
            ));
        }
    }
    if !owner(HTTP_ROUTE, &http) {
        problems.push(format!(
            "{COMPOSITION}: the HTTP API $default route invokes {http}, which handlers::manifest does not route there"
        ));
    }
    problems.extend(websocket_module(tree));
    problems.extend(http_module(tree, &http));
    problems
}

/// `problem` unless `key` of `body` is, in source form, what `ok` accepts.
fn expect(
    problems: &mut Vec<String>,
    at: &str,
    body: &Body,
    key: &str,
    ok: &dyn Fn(&str) -> bool,
    wanted: &str,
) {
    let found = attribute(body, key).map(source);
    if !found.as_deref().is_some_and(ok) {
        problems.push(format!("{at} {key} is {found:?}, expected {wanted}"));
    }
}

/// The WebSocket module: one integration, route and invoke permission per
/// entry of var.routes (route key = the map's key, function = its value),
/// the permission scoped to the stage and the route.
fn websocket_module(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(WEBSOCKET_MODULE));
    for (kind, wanted) in [
        (
            "aws_apigatewayv2_integration",
            vec![
                ("for_each", "var.routes"),
                ("integration_uri", "each.value.invoke_arn"),
            ],
        ),
        (
            "aws_apigatewayv2_route",
            vec![("for_each", "var.routes"), ("route_key", "each.key")],
        ),
        (
            "aws_lambda_permission",
            vec![
                ("for_each", "var.routes"),
                ("function_name", "each.value.function_name"),
            ],
        ),
    ] {
        match module.resource(kind, "this") {
            Ok(block) => {
                for (key, value) in wanted {
                    let at = format!("{WEBSOCKET_MODULE}: {kind}");
                    expect(
                        &mut problems,
                        &at,
                        block.body(),
                        key,
                        &|s| s == value,
                        value,
                    );
                }
            }
            Err(err) => problems.push(err),
        }
    }
    if let Ok(route) = module.resource("aws_apigatewayv2_route", "this") {
        expect(
            &mut problems,
            &format!("{WEBSOCKET_MODULE}: aws_apigatewayv2_route"),
            route.body(),
            "target",
            &|s| s.contains("aws_apigatewayv2_integration.this[each.key].id"),
            "integrations/${aws_apigatewayv2_integration.this[each.key].id}",
        );
    }
    if let Ok(permission) = module.resource("aws_lambda_permission", "this") {
        expect(
            &mut problems,
            &format!("{WEBSOCKET_MODULE}: aws_lambda_permission"),
            permission.body(),
            "source_arn",
            &|s| {
                s.contains("aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/${each.key}")
            },
            "${aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/${each.key} (this stage, this route)",
        );
    }
    problems
}

/// The HTTP API module: its one route is a route of the function it is
/// given (the manifest's), integrated with and permitted to invoke that
/// function, the permission scoped to the stage and the route.
fn http_module(tree: &Tree, function: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let module = try_or_report!(problems, tree.module(HTTP_MODULE));
    let resource = |kind: &str| module.resource(kind, "this").map(|block| block.body());
    let route_key = match resource("aws_apigatewayv2_route") {
        Ok(route) => {
            expect(
                &mut problems,
                &format!("{HTTP_MODULE}: aws_apigatewayv2_route"),
                route,
                "target",
                &|s| s.contains("aws_apigatewayv2_integration.this.id"),
                "integrations/${aws_apigatewayv2_integration.this.id}",
            );
            attribute(route, "route_key")
                .and_then(literal_str)
                .map(str::to_owned)
        }
        Err(err) => {
            problems.push(err);
            None
        }
    };
    let routes = manifest::FUNCTIONS
        .iter()
        .find(|f| f.name == function)
        .map_or(&[][..], |f| f.routes);
    match &route_key {
        Some(key) if routes.contains(&key.as_str()) => {}
        other => problems.push(format!(
            "{HTTP_MODULE}: the route key is {other:?}, but the function it invokes ({function}) has the routes {routes:?} in handlers::manifest"
        )),
    }
    match resource("aws_apigatewayv2_integration") {
        Ok(integration) => expect(
            &mut problems,
            &format!("{HTTP_MODULE}: aws_apigatewayv2_integration"),
            integration,
            "integration_uri",
            &|s| s == "var.function.invoke_arn",
            "var.function.invoke_arn",
        ),
        Err(err) => problems.push(err),
    }
    match resource("aws_lambda_permission") {
        Ok(permission) => {
            let at = format!("{HTTP_MODULE}: aws_lambda_permission");
            expect(
                &mut problems,
                &at,
                permission,
                "function_name",
                &|s| s == "var.function.function_name",
                "var.function.function_name",
            );
            let scoped = route_key.as_deref().map(|key| {
                format!("aws_apigatewayv2_api.this.execution_arn}}/${{aws_apigatewayv2_stage.this.name}}/{key}")
            });
            expect(
                &mut problems,
                &at,
                permission,
                "source_arn",
                &|s| scoped.as_deref().is_some_and(|scoped| s.contains(scoped)),
                "${aws_apigatewayv2_api.this.execution_arn}/${aws_apigatewayv2_stage.this.name}/<the route key> (this stage, this route)",
            );
        }
        Err(err) => problems.push(err),
    }
    problems
}
