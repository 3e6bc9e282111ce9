use anyhow::Context;
use clap::Parser;
use loadgen::chaos::ChaosArgs;

/// The fault-injection suite: three ConsultEase instances on one PostgreSQL and one Mosquitto,
/// faults injected under load, the model checked after each (see `loadgen::chaos`).
#[derive(Parser)]
#[command(name = "consultease-chaos", version)]
struct Cli {
    #[command(flatten)]
    args: ChaosArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Cli::parse().args;
    let path = args.report.clone();
    let report = loadgen::chaos::run(args).await?;
    eprintln!(
        "chaos: {} scenarios, failover p50 {} ms, max {} ms",
        report.scenarios.len(),
        report.failover_p50_ms,
        report.failover_max_ms
    );
    if let Some(path) = path {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(report.ok(), "a scenario lost, reordered or regressed something (logs in the --dir)");
    Ok(())
}
