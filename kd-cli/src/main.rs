//! `kd`: the command users run. It links no libtorch; commands that need it are handed to
//! `kd-engine` (see `engine.rs`).

use clap::Parser;
use kd_cli::cli::{AugmentCommand, Cli, Command};
use kd_cli::{augment, data, demo, doctor, engine};

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("kd: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Demo(args) => demo::run(&args, cli.quiet),
        Command::Data(cmd) => data::run(&cmd, cli.quiet),
        Command::Augment(AugmentCommand::Preview(args)) => augment::preview(&args),
        // These need libtorch: `kd-engine` runs them with the same arguments.
        Command::EngineProbe
        | Command::Models(_)
        | Command::Eval(_)
        | Command::Convert(_)
        | Command::Train(_)
        | Command::Distill(_)
        | Command::Goodness(_)
        | Command::Analyze(_)
        | Command::Study(_)
        | Command::DemoTrain(_) => Err(engine::hand_over(std::env::args_os().skip(1).collect())),
    }
}
