//! `chatroom-operator local FILE...`: every room in the files, served on this machine.

use std::process::ExitCode;

use tokio::net::TcpListener;

use super::signal::shutdown_signal;
use super::{EXIT_BAD_INPUT, load_or_report};
use crate::cli::LocalArgs;
use crate::files::print_rooms;
use crate::gateway::{Gateway, PublicUrl};
use crate::providers::local::LocalProvider;
use crate::status::status_from;

pub async fn run(args: LocalArgs) -> ExitCode {
    let Some(rooms) = load_or_report(&args.files, "started") else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let public_url = match (&args.public_url, listener.local_addr()) {
        (Some(url), _) => url.clone(),
        (None, Ok(addr)) => PublicUrl::listening_at(addr),
        (None, Err(error)) => {
            eprintln!("error: cannot read the listening address: {error}");
            return ExitCode::FAILURE;
        }
    };

    let gateway = Gateway::new(public_url.clone(), args.limits.limits());
    let provider = LocalProvider::new(gateway.clone());
    let mut served = Vec::with_capacity(rooms.len());
    for loaded in rooms {
        let mut room = loaded.room;
        let report = provider.converge(&room);
        if let Some(failure) = report.failure() {
            eprintln!("error: {}: {}", loaded.source, failure.message);
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        room.status = Some(status_from(None, &report, room.metadata.generation));
        served.push(room);
    }
    if let Err(error) = print_rooms(&served) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    tracing::info!(url = %public_url, rooms = gateway.room_keys().len(), "local gateway serving; Ctrl-C to stop");

    match gateway.serve(listener, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: gateway failed: {error}");
            ExitCode::FAILURE
        }
    }
}
