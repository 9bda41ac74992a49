//! The `--inspect*` options of `tunnel` and starting the inspector from them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::capture::Limits;
use super::server::{Bind, BindError, InspectServer, bind};
use super::{Inspector, save};

/// The inspector's command-line options (flattened into `tunnel`'s).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Inspector")]
pub struct InspectArgs {
    /// Where the request inspector listens: a port or IP:PORT. Default:
    /// 127.0.0.1:4040, or the next free port when 4040 is taken. Anything
    /// but a loopback address lets other machines see your traffic
    #[arg(long, env = "TUNNEL_INSPECT", value_name = "ADDR", value_parser = parse_bind)]
    pub inspect: Option<SocketAddr>,

    /// No inspector: nothing is captured
    #[arg(
        long,
        env = "TUNNEL_NO_INSPECT",
        conflicts_with_all = ["inspect", "inspect_save"]
    )]
    pub no_inspect: bool,

    /// How many requests the inspector keeps (the oldest go first)
    #[arg(long, env = "TUNNEL_INSPECT_REQUESTS", default_value = "500", value_name = "N", value_parser = parse_count)]
    pub inspect_requests: usize,

    /// How many bytes of bodies the inspector keeps in all, e.g. 64MB, 512KiB
    #[arg(long, env = "TUNNEL_INSPECT_MEMORY", default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    pub inspect_memory: usize,

    /// Each captured body is cut after this size (the page says so), e.g. 1MB
    #[arg(long, env = "TUNNEL_INSPECT_BODY_LIMIT", default_value = "1MiB", value_name = "SIZE", value_parser = parse_size)]
    pub inspect_body_limit: usize,

    /// Also append every finished request, bodies included, to FILE as JSON
    /// lines (created readable by you only). Nothing is written otherwise
    #[arg(long, env = "TUNNEL_INSPECT_SAVE", value_name = "FILE")]
    pub inspect_save: Option<PathBuf>,
}

impl Default for InspectArgs {
    fn default() -> Self {
        let limits = Limits::default();
        InspectArgs {
            inspect: None,
            no_inspect: false,
            inspect_requests: limits.max_requests,
            inspect_memory: limits.max_body_bytes,
            inspect_body_limit: limits.body_limit,
            inspect_save: None,
        }
    }
}

/// The inspector and its server, as the options asked.
#[derive(Debug)]
pub struct Running {
    pub inspector: Inspector,
    pub server: InspectServer,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Save(#[from] save::SaveError),
}

impl InspectArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_requests: self.inspect_requests,
            max_body_bytes: self.inspect_memory,
            body_limit: self.inspect_body_limit,
        }
    }

    /// Where to listen.
    pub fn bind(&self) -> Bind {
        self.inspect.map_or(Bind::Default, Bind::Exact)
    }

    /// Starts the inspector, or `None` with `--no-inspect`.
    pub async fn start(&self) -> Result<Option<Running>, StartError> {
        if self.no_inspect {
            return Ok(None);
        }
        let listener = bind(&self.bind()).await?;
        let inspector = match &self.inspect_save {
            Some(path) => Inspector::with_saver(self.limits(), save::Saver::open(path)?),
            None => Inspector::new(self.limits()),
        };
        let server = inspector.serve(listener);
        if !server.is_loopback() {
            tracing::warn!(
                addr = %server.addr(),
                "the inspector listens beyond this machine: anyone who reaches it sees every request's headers and bodies and can replay them"
            );
        }
        Ok(Some(Running { inspector, server }))
    }
}

/// `4041` (on 127.0.0.1), `127.0.0.1:4041`, `0.0.0.0:4040`, `[::1]:4040`,
/// `localhost:4040`.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = s
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "{s:?} is not an address to listen on; expected a port (4040) or IP:PORT (127.0.0.1:4040)"
    ))
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a number of requests (1 or more)")),
    }
}

/// `1048576`, `512KB`, `512KiB`, `64MB`, `1.5MiB`, `1GB` (KB = 1000 bytes,
/// KiB = 1024; `k`, `m`, `g` alone mean the binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let err = || format!("{s:?} is not a size; expected e.g. 1048576, 512KB, 64MiB or 1GB");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| err())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > usize::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("4041", "127.0.0.1:4041")]
    #[case("0", "127.0.0.1:0")]
    #[case("127.0.0.1:4041", "127.0.0.1:4041")]
    #[case("0.0.0.0:4040", "0.0.0.0:4040")]
    #[case("[::1]:4040", "[::1]:4040")]
    #[case("localhost:4050", "127.0.0.1:4050")]
    fn binds(#[case] input: &str, #[case] addr: &str) {
        assert_eq!(parse_bind(input).unwrap(), addr.parse().unwrap());
    }

    #[rstest]
    #[case("")]
    #[case("70000")]
    #[case("example.com:4040")]
    #[case("localhost")]
    fn bad_binds(#[case] input: &str) {
        assert!(parse_bind(input).unwrap_err().contains("IP:PORT"));
    }

    #[rstest]
    #[case("1048576", 1_048_576)]
    #[case("512KB", 512_000)]
    #[case("512KiB", 524_288)]
    #[case("64MiB", 67_108_864)]
    #[case("64 MB", 64_000_000)]
    #[case("1.5m", 1_572_864)]
    #[case("1GB", 1_000_000_000)]
    #[case("0", 0)]
    fn sizes(#[case] input: &str, #[case] bytes: usize) {
        assert_eq!(parse_size(input).unwrap(), bytes);
    }

    #[rstest]
    #[case("")]
    #[case("MB")]
    #[case("-1MB")]
    #[case("12 parsecs")]
    fn bad_sizes(#[case] input: &str) {
        assert!(parse_size(input).is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("10"), Ok(10));
        assert!(parse_count("0").is_err());
        assert!(parse_count("x").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        inspect: InspectArgs,
    }

    #[test]
    fn command_line_defaults_are_the_library_defaults() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["tunnel"]).unwrap();
        assert_eq!(cli.inspect.limits(), Limits::default());
        assert_eq!(cli.inspect.limits(), InspectArgs::default().limits());
        assert_eq!(cli.inspect.bind(), Bind::Default);
        assert!(!cli.inspect.no_inspect);
        let err = Cli::try_parse_from(["tunnel", "--no-inspect", "--inspect", "4041"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
