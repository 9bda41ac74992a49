//! The agent-token secret's placeholder and the browser origins of tunnels:
//! the real tree passes, and each check catches the mistake it claims to.

use handlers::config::{UnusableSecret, signing_secret};
use terraform_checks::tree::{attribute, label, literal_str, nested};
use terraform_checks::{Tree, checks};

const SECRET_MODULE: &str = "modules/auth_secret/main.tf";
const TUNNEL: &str = "modules/tunnel/main.tf";
const TUNNEL_OUTPUTS: &str = "modules/tunnel/outputs.tf";
const DOMAIN: &str = "modules/domain/main.tf";

#[track_caller]
fn assert_passes(name: &str, check: checks::Check) {
    let problems = check(&Tree::workspace());
    assert!(
        problems.is_empty(),
        "check {name} found problems in terraform/:\n  - {}",
        problems.join("\n  - ")
    );
}

#[track_caller]
fn detects(path: &str, from: &str, to: &str, check: checks::Check, expected: &[&str]) {
    let tree = Tree::workspace().with_replaced(path, from, to);
    let problems = check(&tree);
    assert!(
        problems
            .iter()
            .any(|problem| expected.iter().all(|fragment| problem.contains(fragment))),
        "expected a problem mentioning {expected:?}, got:\n  - {}",
        problems.join("\n  - ")
    );
}

/// The value the HCL writes into the secret's parameter, given to the
/// function the connect function checks every secret with: refused, as a
/// placeholder (not merely as too short).
#[test]
fn the_placeholder_terraform_writes_cannot_sign_a_token() {
    let tree = Tree::workspace();
    let body = tree.parse(SECRET_MODULE).unwrap();
    let parameter = nested(&body, "resource")
        .find(|r| label(r, 0) == "aws_ssm_parameter" && label(r, 1) == "this")
        .expect("aws_ssm_parameter.this");
    let value = attribute(parameter.body(), "value_wo")
        .and_then(literal_str)
        .expect("a literal value_wo");
    assert_eq!(
        signing_secret(value).map(drop),
        Err(UnusableSecret::Placeholder)
    );
    assert_passes("auth_secret_placeholder", checks::auth_secret_placeholder);
}

#[test]
fn a_placeholder_that_could_sign_is_caught() {
    // Long enough and unmarked: exactly the mistake this guards against.
    detects(
        SECRET_MODULE,
        "\"UNSET: see terraform/README.md\"",
        "\"placeholder-set-me-with-aws-ssm-put-parameter-overwrite\"",
        checks::auth_secret_placeholder,
        &[
            "aws_ssm_parameter.this value_wo",
            "passes the connect function's secret check",
        ],
    );
    detects(
        SECRET_MODULE,
        "\"UNSET: see terraform/README.md\"",
        "var.initial_value",
        checks::auth_secret_placeholder,
        &["is not a literal string"],
    );
    detects(
        SECRET_MODULE,
        "ignore_changes = [value_wo_version]",
        "ignore_changes = [tags]",
        checks::auth_secret_placeholder,
        &["needs lifecycle { ignore_changes = [value_wo_version] }"],
    );
}

/// What the parameter was: `value` with `ignore_changes = [value]`, which
/// only hides the diff: the provider still refreshes the decrypted secret
/// into the state. The write-only argument is the only way in.
#[test]
fn the_secret_in_the_state_is_caught() {
    let tree = Tree::workspace()
        .with_replaced(
            SECRET_MODULE,
            "  value_wo         = \"UNSET: see terraform/README.md\"\n  value_wo_version = 1\n",
            "  value            = \"UNSET: see terraform/README.md\"\n",
        )
        .with_replaced(
            SECRET_MODULE,
            "ignore_changes = [value_wo_version]",
            "ignore_changes = [value]",
        );
    let problems = checks::auth_secret_placeholder(&tree);
    for expected in [
        "aws_ssm_parameter.this sets value, which Terraform stores in its state",
        "aws_ssm_parameter.this sets no value_wo",
        "needs lifecycle { ignore_changes = [value_wo_version] }",
    ] {
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "expected {expected:?} in {problems:#?}"
        );
    }
    detects(
        SECRET_MODULE,
        "  value_wo_version = 1\n",
        "",
        checks::auth_secret_placeholder,
        &["sets no value_wo_version"],
    );
}

#[test]
fn routing_gives_each_tunnel_its_own_origin() {
    assert_passes("routing", checks::routing);
}

#[test]
fn the_execute_api_endpoint_left_on_with_host_routing() {
    detects(
        TUNNEL,
        "disable_execute_api_endpoint = var.routing == \"host\"",
        "disable_execute_api_endpoint = false",
        checks::routing,
        &[
            "disable_execute_api_endpoint = Some(Bool(false)) with host routing",
            "one origin",
        ],
    );
}

#[test]
fn the_apex_mapped() {
    detects(
        DOMAIN,
        "    wildcard = local.wildcard\n",
        "    apex     = var.domain_name\n    wildcard = local.wildcard\n",
        checks::routing,
        &["aws_apigatewayv2_domain_name.this for_each includes the apex"],
    );
    detects(
        DOMAIN,
        "domain_name       = local.wildcard",
        "domain_name       = var.domain_name",
        checks::routing,
        &["aws_acm_certificate.this domain_name includes the apex"],
    );
}

#[test]
fn host_routing_without_a_domain_allowed() {
    detects(
        TUNNEL_OUTPUTS,
        "condition     = (var.routing == \"host\") == (var.domain_name != null)",
        "condition     = var.routing == \"host\" || var.domain_name == null",
        checks::routing,
        &["the routing precondition accepts routing = \"host\" with domain_name = null"],
    );
}

#[test]
fn an_env_that_would_not_plan() {
    detects(
        "envs/dev/terraform.tfvars",
        "\nrouting = \"path\"\n",
        "\n",
        checks::routing,
        &[
            "envs/dev: routing and domain_name",
            "fail the composition's routing precondition",
        ],
    );
}

#[test]
fn forwarding_without_its_routing() {
    detects(
        TUNNEL,
        "      ROUTING                     = var.routing\n",
        "",
        checks::function_environment,
        &["function forwarding needs ROUTING"],
    );
    detects(
        TUNNEL,
        "      ROUTING                     = var.routing\n",
        "      ROUTING                     = \"path\"\n",
        checks::function_environment,
        &["ROUTING = \"path\": expected host (with a custom domain)"],
    );
}

/// The deploy gate (`scripts/auth-secret-set.sh`, run by deploy.yml before
/// anything that accepts connections is created) against a fake `aws`:
/// its verdict is `signing_secret`'s on every value, the HCL's placeholder
/// included, and a missing parameter fails it.
#[test]
fn the_deploy_gate_agrees_with_the_connect_function() {
    let tree = Tree::workspace();
    let body = tree.parse(SECRET_MODULE).unwrap();
    let placeholder = nested(&body, "resource")
        .find(|r| label(r, 0) == "aws_ssm_parameter")
        .and_then(|r| attribute(r.body(), "value_wo"))
        .and_then(literal_str)
        .expect("a literal value_wo")
        .to_string();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/auth-secret-set.sh");
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join("aws");
    // `aws ssm get-parameter ... --output text`: the value and a newline,
    // or ParameterNotFound when there is no value file.
    std::fs::write(
        &aws,
        "#!/bin/sh\nif [ -f \"$FAKE_SSM_VALUE\" ]; then cat \"$FAKE_SSM_VALUE\"; echo; exit 0; fi\n\
         echo 'An error occurred (ParameterNotFound) when calling the GetParameter operation: Parameter /t/auth-secret not found.' >&2\nexit 254\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let value_file = dir.path().join("value");
    let gate = |value: Option<&str>| {
        match value {
            Some(value) => std::fs::write(&value_file, value).unwrap(),
            None => {
                let _ = std::fs::remove_file(&value_file);
            }
        }
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("/t/auth-secret")
            .env("PATH", &path)
            .env("FAKE_SSM_VALUE", &value_file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(value) = value.filter(|v| v.trim().len() >= 8) {
            assert!(
                !stdout.contains(value.trim()),
                "the value printed: {stdout}"
            );
        }
        (out.status.code(), stdout)
    };

    let (code, out) = gate(None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("does not exist") && out.contains("put-parameter"),
        "{out}"
    );

    let secret = "q7Zc1f0mXnP2vV8wLr4tYb6sKd9hJe3gUa5iOo0pQx=";
    let mut values = vec![
        placeholder.clone(),
        placeholder.to_uppercase(),
        format!("  {placeholder}\n"),
        "placeholder: set me with aws ssm put-parameter --overwrite".to_string(),
        "PlaceHolder: 0123456789abcdef0123456789abcdef".to_string(),
        "0123456789".to_string(),
        "0123456789abcdef0123456789abcde".to_string(),
        "0123456789abcdef0123456789abcdef".to_string(),
        format!(" {secret}\t"),
        format!("{secret} unset:"),
    ];
    for marker in handlers::config::PLACEHOLDER_MARKERS {
        values.push(format!("{marker}0123456789abcdef0123456789abcdef"));
    }
    for value in &values {
        let (code, out) = gate(Some(value));
        let usable = signing_secret(value.as_str()).is_ok();
        assert_eq!(code == Some(0), usable, "{value:?}: {out}");
        assert_eq!(code, Some(if usable { 0 } else { 1 }), "{value:?}: {out}");
        if matches!(
            signing_secret(value.as_str()),
            Err(UnusableSecret::Placeholder)
        ) {
            assert!(out.contains("placeholder"), "{out}");
        }
    }
}

/// The deploy gate's token (scripts/gate-token.sh, run by deploy.yml's
/// gate job): the secret read from the parameter reaches `tunnel token
/// issue` in its environment only (never an argument `ps` shows), for the
/// user deploy-gate and 2 hours; nothing but the token is printed; a
/// parameter that cannot be read fails the script. (The order of the
/// deploy's steps and the token's use are tests/workflows.rs.)
#[test]
fn the_gate_mints_its_token_from_the_secret_without_showing_it() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gate-token.sh");
    let dir = tempfile::tempdir().unwrap();
    let secret = "q7Zc1f0mXnP2vV8wLr4tYb6sKd9hJe3gUa5iOo0pQx=";
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    };
    // `aws ssm get-parameter --name P --with-decryption ...`: the secret for
    // /t/auth-secret, ParameterNotFound otherwise.
    write(
        "aws",
        format!(
            "#!/bin/sh\ncase \"$*\" in *'--name /t/auth-secret '*) echo '{secret}'; exit 0;; esac\n\
             echo 'An error occurred (ParameterNotFound)' >&2\nexit 254\n"
        ),
    );
    // A stand-in for `tunnel`: its arguments and whether the variable it
    // is told to read holds the secret.
    let tunnel = write(
        "tunnel",
        format!(
            "#!/bin/sh\nvar=$(echo \"$*\" | sed -n 's/.*--secret-env \\([A-Z_]*\\).*/\\1/p')\n\
             eval value=\\$$var\n[ \"$value\" = '{secret}' ] || {{ echo 'secret not in the environment' >&2; exit 3; }}\n\
             echo \"token-for $*\"\n"
        ),
    );
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |parameter: &str| {
        std::process::Command::new("bash")
            .arg(&script)
            .arg(parameter)
            .arg(&tunnel)
            .env("PATH", &path)
            .output()
            .unwrap()
    };

    let out = run("/t/auth-secret");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "only the token: {stdout}");
    assert!(
        stdout.starts_with("token-for token issue --secret-env "),
        "{stdout}"
    );
    assert!(stdout.contains("--user deploy-gate"), "{stdout}");
    assert!(stdout.contains("--expires 2h"), "{stdout}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "{stdout}{stderr}"
    );

    let out = run("/t/missing");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not read"));
}
