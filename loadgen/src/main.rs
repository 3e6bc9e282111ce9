use anyhow::Context;
use clap::Parser;
use loadgen::LoadgenArgs;

/// Drive a running ConsultEase server with simulated desks and live-stream clients; check that
/// nothing is lost, duplicated or reordered, and measure latency, throughput and resources.
#[derive(Parser)]
#[command(name = "consultease-loadgen", version)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Cli::parse().args;
    if args.consult {
        let report = loadgen::consult::run(&args).await?;
        loadgen::consult::print(&report);
        if let Some(path) = &args.report {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        anyhow::ensure!(report.ok(), "requests were lost or went backwards");
        return Ok(());
    }
    let report = loadgen::run(&args).await?;
    loadgen::print(&report);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(report.ok(), "changes were lost, reordered or missing");
    Ok(())
}
