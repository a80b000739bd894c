//! `kd-engine`: the half of kd that links libtorch. Users run `kd`, which starts this binary for
//! the commands that need libtorch; it parses the same command line.

mod torch;

use clap::Parser;
use kd_cli::cli::{Cli, Command, StudyCommand};
use kd_core::train::Mode;

fn main() {
    // Before any tensor exists: keep freed activations in the process (see the function's doc).
    kd_core::runtime::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::EngineProbe => probe(),
        Command::Models(args) => torch::models::run(&args),
        Command::Eval(args) => torch::eval::run(&args),
        Command::Convert(args) => torch::convert::run(&args),
        Command::Train(args) => torch::train::run(&args, Mode::Train, cli.quiet),
        Command::Distill(args) => torch::train::run(&args, Mode::Distill, cli.quiet),
        Command::Goodness(args) => torch::goodness::run(&args, cli.quiet),
        Command::Analyze(args) => torch::analyze::run(&args),
        Command::DemoTrain(args) => torch::demo::run(&args, cli.quiet),
        Command::Study(StudyCommand::GoodDa(args)) => {
            torch::study::run_args::<torch::study::good_da::GoodDa>(&args, cli.quiet)
        }
        Command::Study(StudyCommand::KdGrid(args)) => {
            torch::study::run_args::<torch::study::kd_grid::KdGrid>(&args, cli.quiet)
        }
        Command::Study(StudyCommand::DataAmount(args)) => {
            torch::study::run_args::<torch::study::data_amount::DataAmount>(&args, cli.quiet)
        }
        Command::Study(StudyCommand::Report(args)) => torch::study::report_dir(&args.dir),
        other => Err(anyhow::anyhow!(
            "kd-engine does not run {other:?}; run it through `kd`"
        )),
    };
    if let Err(e) = result {
        eprintln!("kd: error: {e:#}");
        std::process::exit(1);
    }
}

/// Prints the runtime report as JSON for `kd doctor`.
fn probe() -> anyhow::Result<()> {
    let info = kd_core::runtime::RuntimeInfo::query();
    println!("{}", serde_json::to_string(&info)?);
    Ok(())
}
