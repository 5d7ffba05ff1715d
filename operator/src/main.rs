use std::process::ExitCode;

use clap::Parser;

use chatroom_operator::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    chatroom_operator::commands::run(Cli::parse()).await
}
