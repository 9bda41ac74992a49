//! `just bench`: benchmarks of the tunnel on the local stack. See `--help`
//! and `bench/BENCHMARKS.md`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use itest::{DynamoDb, Logs, Profile, paths};
use tunnel_bench::{
    cost,
    counting::{CallCounter, Upstream},
    handover::HandoverPlan,
    report::{Prices, Report, method_notes},
    run::{self, Bench, HandlerBuild, Plan, parse_size},
    service::SizedService,
};

/// Benchmarks of the serverless tunnel on the local stack (emulated API
/// Gateway + the four release-built handlers + moto/LocalStack DynamoDB, all
/// on 127.0.0.1).
///
/// Phases: cold starts of fresh stacks; added latency by response size and
/// by request body size (direct and tunnel requests alternating); the adaptive polling schedule
/// beside a fixed interval (two stacks, interleaved); DynamoDB calls, read /
/// write units, S3 requests, Lambda invocations and cost per request
/// (counting proxies in front of DynamoDB, S3 and @connections); throughput
/// by visitors × agents; failed requests across forced handovers (one agent
/// at 20 requests/s, connections ended every 20 s for 70 s, every 10 s for
/// 25 s with --quick).
/// Sizes the tunnel cannot carry are reported as "not supported (status …)".
///
/// Prints Markdown tables, writes JSON (default target/bench/latest.json) and
/// the tables next to it (latest.md). The DynamoDB backend follows
/// ITEST_DYNAMODB (auto: LocalStack with Docker, else moto).
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// A short run (about 1.5 minutes): fewer samples, 2 s throughput cells, 2 cold starts, 25 s of handovers.
    #[arg(long)]
    quick: bool,
    /// Response sizes for the latency phase (B, KB, MB; KB = 1024 B).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "1KB,64KB,100KB,1MB")]
    sizes: Vec<usize>,
    /// Request body sizes for the latency phase (each a POST answered with 1 KB; B, KB, MB).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "64KB,1MB")]
    request_sizes: Vec<usize>,
    /// Request pairs (direct + tunnel) per size and polling case [default: 200, --quick 30].
    #[arg(long)]
    samples: Option<usize>,
    /// Concurrent visitors of the throughput phase.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    visitors: Vec<usize>,
    /// Agents (tunnels to the same service) of the throughput phase.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    agents: Vec<usize>,
    /// Seconds per throughput cell [default: 8, --quick 2].
    #[arg(long)]
    cell_seconds: Option<f64>,
    /// At most this many requests per throughput cell.
    #[arg(long, default_value_t = 20_000)]
    cell_max_requests: u64,
    /// Fresh stacks started to time cold starts [default: 5, --quick 2].
    #[arg(long)]
    cold_starts: Option<usize>,
    /// The fixed poll interval (ms) compared with the adaptive schedule (the seed's 100 ms).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    fixed_poll_ms: u64,
    /// Processes per function (AWS scales out likewise; keep ≥ visitors).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Use debug-built handlers instead of release.
    #[arg(long)]
    debug_handlers: bool,
    /// Do not run cargo: use target/{release,debug}/<function> as they are.
    #[arg(long)]
    no_build: bool,
    /// Where the functions' output goes: discard or stderr.
    #[arg(long, default_value = "discard", value_parser = ["discard", "stderr"])]
    function_logs: String,
    /// JSON output (the Markdown tables go next to it as .md).
    #[arg(long)]
    output: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profile = if args.debug_handlers {
        Profile::Debug
    } else {
        Profile::Release
    };
    // Before the runtime: cargo may take a while and prints its own progress.
    if !args.no_build {
        eprintln!("bench: building the handlers ({profile})…");
    }
    let build = HandlerBuild::get(profile, !args.no_build)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args, build))
}

async fn bench(args: Args, build: run::HandlerBuild) -> anyhow::Result<()> {
    let quick = args.quick;
    let plan = Plan {
        quick,
        sizes: args.sizes.clone(),
        request_sizes: args.request_sizes.clone(),
        samples: args.samples.unwrap_or(if quick { 30 } else { 200 }).max(1),
        visitors: args.visitors.clone(),
        agents: args.agents.clone(),
        cell_duration: Duration::from_secs_f64(
            args.cell_seconds
                .unwrap_or(if quick { 2.0 } else { 8.0 })
                .clamp(0.5, 120.0),
        ),
        cell_max_requests: args.cell_max_requests,
        cold_starts: args.cold_starts.unwrap_or(if quick { 2 } else { 5 }),
        fixed_poll_interval: Duration::from_millis(args.fixed_poll_ms),
        concurrency: args.concurrency.max(1),
        logs: if args.function_logs == "stderr" {
            Logs::Stderr
        } else {
            Logs::Discard
        },
    };

    eprintln!("bench: starting DynamoDB…");
    let backend = DynamoDb::shared().await.context("starting DynamoDB")?;
    let (memory_mb, memory_source) = cost::memory_sizes(&paths::workspace_root());
    let bench = Bench {
        plan: plan.clone(),
        build: build.clone(),
        dynamodb: Arc::new(CallCounter::new(Upstream::DynamoDb)),
        s3: Arc::new(CallCounter::new(Upstream::S3)),
        memory_mb: memory_mb.clone(),
        client: run::visitor_client()?,
        service: SizedService::start().await?,
    };

    eprintln!("bench: cold starts ({} fresh stacks)…", plan.cold_starts);
    let cold_starts = bench.cold_starts().await?;

    let max_agents = plan.agents.iter().copied().max().unwrap_or(1).max(1);
    eprintln!(
        "bench: starting the adaptive stack ({max_agents} agents) and the fixed-interval stack…"
    );
    let adaptive = bench.stack(None, plan.concurrency).await?;
    let fixed = bench
        .stack(Some(plan.fixed_poll_interval), plan.concurrency)
        .await?;
    let mut tunnels = Vec::new();
    for _ in 0..max_agents {
        tunnels.push(adaptive.expose(&bench.service.port()).await?);
    }
    let fixed_tunnel = fixed.expose(&bench.service.port()).await?;

    eprintln!("bench: latency by size ({} pairs each)…", plan.samples);
    let latency = bench.latency(&adaptive, &tunnels[0]).await?;
    eprintln!("bench: polling strategies…");
    let polling = bench
        .polling((&adaptive, &tunnels[0]), (&fixed, &fixed_tunnel))
        .await?;
    eprintln!(
        "bench: throughput ({} cells of {:?})…",
        plan.visitors.len() * plan.agents.len(),
        plan.cell_duration
    );
    let throughput = bench.throughput(&tunnels).await?;

    for tunnel in tunnels {
        let _ = tunnel.shutdown().await;
    }
    let _ = fixed_tunnel.shutdown().await;
    adaptive.shutdown().await;
    fixed.shutdown().await;

    let handover_plan = HandoverPlan::new(quick);
    eprintln!(
        "bench: handovers ({:?} connections, {:?} of load)…",
        handover_plan.max_age, handover_plan.load.duration
    );
    let handover = handover_plan
        .run(
            bench.stack_config(None, plan.concurrency),
            bench.dynamodb.clone(),
            bench.s3.clone(),
            &bench.client,
        )
        .await?;

    let report = Report {
        generated_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick,
        machine: run::machine(),
        dynamodb_backend: backend.choice().to_string(),
        handlers_profile: build.profile.to_string(),
        memory_mb,
        memory_source,
        latency,
        polling,
        throughput,
        cold_starts,
        handover,
        prices: Prices::current(),
        method: method_notes(),
    };
    let markdown = report.markdown();
    println!("{markdown}");
    for note in &report.method {
        println!("- {note}");
    }
    let output = args.output.unwrap_or_else(run::default_output);
    run::write(&output, &serde_json::to_string_pretty(&report)?)?;
    let md = output.with_extension("md");
    run::write(&md, &markdown)?;
    println!("\nJSON: {}\nMarkdown: {}", output.display(), md.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
        let quick = Args::try_parse_from(["bench", "--quick", "--sizes", "1KB,2MB"]).unwrap();
        assert!(quick.quick);
        assert_eq!(quick.sizes, [1024, 2 << 20]);
        assert_eq!(quick.request_sizes, [64 << 10, 1 << 20]);
        let bodies = Args::try_parse_from(["bench", "--request-sizes", "100KB"]).unwrap();
        assert_eq!(bodies.request_sizes, [100 << 10]);
    }
}
