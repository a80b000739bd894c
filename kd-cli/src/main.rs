//! `kd`: the command users run. It links no libtorch; commands that need it are handed to
//! `kd-engine` (see `engine.rs`).

use clap::Parser;
use kd_cli::cli::AugmentCommand;
use kd_cli::cli::{Cli, Command};
use kd_cli::{augment, data, demo, doctor, engine};

fn main() {
    let cli = Cli::parse();
    let result = if cli.command.needs_engine() {
        Err(engine::hand_over(std::env::args_os().skip(1).collect()))
    } else {
        run(cli)
    };
    if let Err(e) = result {
        eprintln!("kd: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Data(cmd) => data::run(&cmd, cli.quiet),
        Command::Augment(AugmentCommand::Preview(args)) => augment::preview(&args),
        Command::EngineProbe => unreachable!("handed to kd-engine"),
    }
}
