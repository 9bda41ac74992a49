//! Who may reach the tunnel: the `--basic-auth`, `--allow-cidr`,
//! `--url-token` and `--verify-webhook` options, turned into the
//! [`AccessPolicy`] the agent declares in its handshake (the server checks
//! it at the edge, before a request reaches this agent; see
//! `protocol::policy`).
//!
//! Nothing secret leaves the laptop that a hash can replace: passwords are
//! sent as salted SHA-256 hashes, the URL token as its hash. The webhook
//! secret is needed for the HMAC, so it is sent and kept on the tunnel's
//! claim in DynamoDB while this agent is connected (removed when it
//! disconnects). None of them is ever printed or logged, except the URL
//! token inside the URL the user needs.

use protocol::policy::{self, AccessPolicy, Cidr, URL_TOKEN_PARAM, Webhook, WebhookProvider};

/// The access options (flattened into `tunnel`'s).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Access control (checked at the edge)")]
pub struct AccessArgs {
    /// Visitors must log in as USER:PASSWORD (HTTP Basic; repeatable for
    /// several users). The password is sent to the server only as a salted
    /// SHA-256 hash, a fast one: use a long random password. The local
    /// service never sees the Authorization header
    #[arg(
        long = "basic-auth",
        env = "TUNNEL_BASIC_AUTH",
        hide_env_values = true,
        value_name = "USER:PASSWORD",
        value_parser = parse_credential
    )]
    pub basic_auth: Vec<Credential>,

    /// Only visitors from this IPv4 or IPv6 block (repeatable; the env
    /// variable takes a comma-separated list), e.g. 203.0.113.0/24,
    /// 2001:db8::/32, 198.51.100.7. Others get 403
    #[arg(
        long = "allow-cidr",
        env = "TUNNEL_ALLOW_CIDR",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub allow_cidr: Vec<Cidr>,

    /// Visitors must present a random token: the printed URL carries it
    /// (`?tunnel_token=…`); a visit with it sets a cookie so the page's
    /// other requests pass. The local service never sees it. A new token at
    /// each start
    #[arg(long, env = "TUNNEL_URL_TOKEN")]
    pub url_token: bool,

    /// Accept only requests signed by this webhook sender: github
    /// (X-Hub-Signature-256), stripe (Stripe-Signature), slack
    /// (X-Slack-Signature) or hmac (hex HMAC-SHA256 of the body in
    /// --webhook-header). Others get 401 and never reach this agent
    #[arg(
        long,
        env = "TUNNEL_VERIFY_WEBHOOK",
        value_name = "PROVIDER",
        requires = "webhook_secret_env",
        value_parser = parse_provider
    )]
    pub verify_webhook: Option<WebhookProvider>,

    /// The environment variable holding the webhook signing secret (the
    /// secret itself never goes on the command line). It is kept on the
    /// tunnel's server while this agent is connected
    #[arg(long, env = "TUNNEL_WEBHOOK_SECRET_ENV", value_name = "VAR")]
    pub webhook_secret_env: Option<String>,

    /// With `--verify-webhook hmac`: the header carrying the signature
    #[arg(long, env = "TUNNEL_WEBHOOK_HEADER", value_name = "NAME")]
    pub webhook_header: Option<String>,
}

/// A `--basic-auth` value, as given: validated in [`AccessArgs::access`],
/// because clap quotes a value its parser refuses, and this one holds a
/// password. No `Debug` of it.
#[derive(Clone)]
pub struct Credential(String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

fn parse_credential(s: &str) -> Result<Credential, String> {
    Ok(Credential(s.to_string()))
}

impl Credential {
    fn split(&self) -> Result<(&str, &str), String> {
        match self.0.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Ok((user, password))
            }
            // Never quote the value: it holds a password.
            _ => Err(
                "a --basic-auth value is not USER:PASSWORD with a non-empty user and password"
                    .into(),
            ),
        }
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.trim().parse()
}

fn parse_provider(s: &str) -> Result<WebhookProvider, String> {
    s.parse()
}

/// What the options give: the policy to declare (none without options)
/// and the URL token to print with the URL.
#[derive(Default)]
pub struct Access {
    pub policy: Option<AccessPolicy>,
    pub url_token: Option<String>,
}

impl AccessArgs {
    /// Builds the policy; `env` reads the webhook secret's variable. Errors
    /// name what is wrong, never a secret.
    pub fn access(&self, env: impl Fn(&str) -> Option<String>) -> Result<Access, String> {
        let url_token = self.url_token.then(policy::generate_url_token);
        let webhook = match &self.verify_webhook {
            None => {
                if self.webhook_header.is_some() {
                    return Err("--webhook-header needs --verify-webhook hmac".into());
                }
                None
            }
            Some(provider) => {
                let var = self
                    .webhook_secret_env
                    .as_deref()
                    .ok_or("--verify-webhook needs --webhook-secret-env VAR")?;
                let secret = env(var).filter(|s| !s.is_empty()).ok_or_else(|| {
                    format!(
                        "the environment variable {var} (--webhook-secret-env) is not set or empty"
                    )
                })?;
                let header = match (provider, &self.webhook_header) {
                    (WebhookProvider::Hmac, None) => {
                        return Err("--verify-webhook hmac needs --webhook-header NAME".into());
                    }
                    (WebhookProvider::Hmac, Some(h)) => Some(h.to_ascii_lowercase()),
                    (_, Some(_)) => {
                        return Err("--webhook-header is only for --verify-webhook hmac".into());
                    }
                    (_, None) => None,
                };
                Some(Webhook {
                    provider: *provider,
                    secret,
                    header,
                })
            }
        };
        let mut basic_auth = Vec::new();
        for credential in &self.basic_auth {
            let (user, password) = credential.split()?;
            basic_auth.push(policy::hash_credential(user, password));
        }
        let policy = AccessPolicy {
            basic_auth,
            allow_cidrs: self.allow_cidr.clone(),
            url_token_hash: url_token.as_deref().map(policy::url_token_hash),
            webhook,
        };
        policy.validate().map_err(|e| e.to_string())?;
        let header = policy.to_header();
        if header.len() > policy::MAX_POLICY_HEADER_BYTES {
            return Err(format!(
                "the access options are too many: {} bytes encoded, the limit is {} (fewer --allow-cidr or --basic-auth)",
                header.len(),
                policy::MAX_POLICY_HEADER_BYTES
            ));
        }
        Ok(Access {
            policy: (!policy.is_empty()).then_some(policy),
            url_token,
        })
    }
}

/// `public_url` with the URL token, as the user shares it.
pub fn url_with_token(public_url: &str, token: &str) -> String {
    let base = if public_url.ends_with('/') {
        public_url.to_string()
    } else {
        format!("{public_url}/")
    };
    format!("{base}?{URL_TOKEN_PARAM}={token}")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        access: AccessArgs,
    }

    fn parse(args: &[&str]) -> Result<AccessArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("tunnel").chain(args.iter().copied())).map(|c| c.access)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn no_options_no_policy() {
        let access = parse(&[]).unwrap().access(no_env).unwrap();
        assert!(access.policy.is_none());
        assert!(access.url_token.is_none());
    }

    #[test]
    fn every_option_makes_its_part_of_the_policy() {
        let args = parse(&[
            "--basic-auth",
            "ann:correct horse",
            "--basic-auth",
            "bob:pw:with:colons",
            "--allow-cidr",
            "10.0.0.0/8",
            "--allow-cidr",
            "2001:db8::/32",
            "--url-token",
            "--verify-webhook",
            "github",
            "--webhook-secret-env",
            "GH_SECRET",
        ])
        .unwrap();
        let access = args
            .access(|v| (v == "GH_SECRET").then(|| "s3cret".to_string()))
            .unwrap();
        let policy = access.policy.unwrap();
        assert_eq!(policy.basic_auth.len(), 2);
        let bob = &policy.basic_auth[1];
        assert_eq!(
            bob.hash,
            policy::credential_hash(&bob.salt, "bob", "pw:with:colons")
        );
        assert_eq!(policy.allow_cidrs.len(), 2);
        let token = access.url_token.unwrap();
        assert_eq!(policy.url_token_hash, Some(policy::url_token_hash(&token)));
        let webhook = policy.webhook.as_ref().unwrap();
        assert_eq!(webhook.provider, WebhookProvider::Github);
        assert_eq!(webhook.secret, "s3cret");
        // Nothing secret in the handshake header but the webhook secret.
        let header = String::from_utf8(
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                policy.to_header(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(!header.contains("correct horse") && !header.contains(&token));
    }

    #[test]
    fn bad_values_are_clear_errors_that_quote_no_password() {
        for bad in ["annsecretpw", ":secretpw", "ann:"] {
            let e = parse(&["--basic-auth", bad])
                .unwrap()
                .access(no_env)
                .err()
                .unwrap();
            assert!(e.contains("USER:PASSWORD"), "{e}");
            assert!(!e.contains("secretpw"), "{e}");
        }
        let e = parse(&["--allow-cidr", "10.0.0.0/40"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CIDR block"), "{e}");
        let e = parse(&["--verify-webhook", "gitlab", "--webhook-secret-env", "X"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("github, stripe, slack, hmac"), "{e}");
        assert!(
            parse(&["--verify-webhook", "github"]).is_err(),
            "needs the secret's variable"
        );
    }

    #[test]
    fn webhook_secret_and_header_problems_are_named() {
        let args = parse(&["--verify-webhook", "stripe", "--webhook-secret-env", "NOPE"]).unwrap();
        let e = args.access(no_env).err().unwrap();
        assert!(e.contains("NOPE") && e.contains("not set"), "{e}");

        let args = parse(&["--verify-webhook", "hmac", "--webhook-secret-env", "S"]).unwrap();
        let e = args.access(|_| Some("x".into())).err().unwrap();
        assert!(e.contains("--webhook-header"), "{e}");

        let args = parse(&[
            "--verify-webhook",
            "hmac",
            "--webhook-secret-env",
            "S",
            "--webhook-header",
            "X-Signature",
        ])
        .unwrap();
        let policy = args.access(|_| Some("x".into())).unwrap().policy.unwrap();
        assert_eq!(
            policy.webhook.unwrap().header.as_deref(),
            Some("x-signature")
        );
    }

    #[test]
    fn the_url_token_goes_in_the_query_of_the_root() {
        assert_eq!(
            url_with_token("https://abc.example.com", "T"),
            "https://abc.example.com/?tunnel_token=T"
        );
        assert_eq!(
            url_with_token("https://api.example.com/prod/abc/", "T"),
            "https://api.example.com/prod/abc/?tunnel_token=T"
        );
    }

    #[test]
    fn credentials_do_not_debug_their_password() {
        let args = parse(&["--basic-auth", "ann:hunter2"]).unwrap();
        assert!(!format!("{args:?}").contains("hunter2"));
    }
}
