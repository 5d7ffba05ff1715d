use std::process::ExitCode;

use clap::Parser;

use chatroom_operator::cli::{Cli, Command};
use chatroom_operator::{crd, local_command, one_shot, run_command, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: cannot render the CRD: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Local(args) => local_command::run(args).await,
        Command::Apply(args) => one_shot::apply(args).await,
        Command::Delete(args) => one_shot::delete(args).await,
        Command::Run(args) => run_command::run(*args).await,
    }
}
