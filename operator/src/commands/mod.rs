//! The binary's commands. `main` parses the command line and hands it to [`run`]; each command
//! lives in a module of its own, and what several share lives here.

mod apply;
mod aws;
mod dev_issuer;
mod gateway;
mod iam_policy;
mod local;
mod run;
mod signal;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::files::{LoadedRoom, load_rooms};
use crate::{crd, telemetry};

/// Exit status for bad input: nothing was started or changed.
const EXIT_BAD_INPUT: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    telemetry::init(cli.log_format);
    // Boxed: the commands' futures (the AWS SDK's above all) are deep, and the compiler lays
    // out only the one that runs.
    match cli.command {
        Command::Crd => print_crd(),
        Command::Local(args) => Box::pin(local::run(args)).await,
        Command::Apply(args) => Box::pin(apply::apply(args)).await,
        Command::Delete(args) => Box::pin(apply::delete(args)).await,
        Command::Run(args) => Box::pin(run::run(*args)).await,
        Command::DevIssuer(args) => dev_issuer::run(args).await,
        Command::IamPolicy(args) => iam_policy::print(&args),
    }
}

fn print_crd() -> ExitCode {
    match crd::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot render the CRD: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Every room in `files`, or `None` after printing every problem found in them; `nothing` says
/// what did not happen because of them ("started", "changed").
fn load_or_report(files: &[PathBuf], nothing: &str) -> Option<Vec<LoadedRoom>> {
    match load_rooms(files) {
        Ok(rooms) => Some(rooms),
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!("{} problem(s) found; nothing was {nothing}", errors.len());
            None
        }
    }
}
