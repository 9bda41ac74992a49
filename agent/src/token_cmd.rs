//! `tunnel token issue`: mint an agent token (operators).

use std::path::PathBuf;
use std::time::Duration;

use agent::token::{SecretSource, issue, load_secret, now_secs, parse_validity};
use clap::{ArgGroup, Args, Subcommand};

pub const ABOUT: &str = "Mint agent tokens for your tunnel (operators)";

pub const EXAMPLES: &str = "\
Examples:
  # The secret lives in SSM (terraform output auth_secret_parameter)
  export TUNNEL_AUTH_SECRET=\"$(aws ssm get-parameter --with-decryption \\
      --name /serverless-tunnel/dev/auth-secret --query Parameter.Value --output text)\"
  tunnel token issue --secret-env TUNNEL_AUTH_SECRET --user alice --expires 30d
  tunnel token issue --secret-env TUNNEL_AUTH_SECRET --user ci --expires 7d --subdomain ci-hooks

The token is printed on stdout and nothing else; give it to the user, who
passes it with --token or TUNNEL_TOKEN.";

/// `tunnel token …`; `about` and examples are set where it is mounted.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new signed token (JWT, HS256) on stdout
    #[command(group(ArgGroup::new("secret").required(true).args(["secret_env", "secret_file"])))]
    Issue {
        /// Name of the environment variable holding the signing secret
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        /// File holding the signing secret
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Who the token is for (recorded with the tunnel)
        #[arg(long, value_name = "NAME")]
        user: String,
        /// How long the token is valid, e.g. 30d, 2w, 12h
        #[arg(long, value_name = "DURATION", value_parser = parse_validity)]
        expires: Duration,
        /// Reserve this subdomain for the user: their agents always get it
        #[arg(long, value_name = "NAME")]
        subdomain: Option<String>,
    },
}

/// Runs `tunnel token …`.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Issue {
            secret_env,
            secret_file,
            user,
            expires,
            subdomain,
        } => {
            let source = match (secret_env, secret_file) {
                (Some(var), _) => SecretSource::Env(var),
                (None, Some(file)) => SecretSource::File(file),
                (None, None) => anyhow::bail!("pass --secret-env VAR or --secret-file FILE"),
            };
            let secret = load_secret(&source)?;
            let token = issue(&secret, &user, expires, subdomain.as_deref(), now_secs())?;
            println!("{token}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser};

    /// The subcommand on its own, as `tunnel token` mounts it.
    #[derive(Debug, Parser)]
    struct TokenCli {
        #[command(flatten)]
        args: TokenArgs,
    }

    #[test]
    fn cli_is_consistent() {
        TokenCli::command().debug_assert();
    }

    #[test]
    fn needs_exactly_one_secret_source() {
        let base = ["tunnel token", "issue", "--user", "a", "--expires", "1d"];
        assert!(TokenCli::try_parse_from(base).is_err());
        let both = [&base[..], &["--secret-env", "X", "--secret-file", "f"]].concat();
        assert!(TokenCli::try_parse_from(both).is_err());
        let env = [&base[..], &["--secret-env", "X", "--subdomain", "app"]].concat();
        assert!(TokenCli::try_parse_from(env).is_ok());
    }
}
