//! `chatroom-operator local FILE...`: every room in the files, served on this machine.

use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::cli::LocalArgs;
use crate::files::{load_rooms, print_rooms};
use crate::gateway::Gateway;
use crate::providers::local::LocalProvider;

/// Exit status for bad input: nothing was started.
pub const EXIT_BAD_INPUT: u8 = 2;

pub async fn run(args: LocalArgs) -> ExitCode {
    let rooms = match load_rooms(&args.files) {
        Ok(rooms) => rooms,
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!("{} problem(s) found; nothing was started", errors.len());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };

    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let base_url = match (&args.public_url, listener.local_addr()) {
        (Some(url), _) => url.clone(),
        (None, Ok(addr)) => format!("http://{addr}"),
        (None, Err(error)) => {
            eprintln!("error: cannot read the listening address: {error}");
            return ExitCode::FAILURE;
        }
    };

    let gateway = Gateway::new(&base_url, args.limits.limits());
    let provider = LocalProvider::new(gateway.clone());
    let mut served = Vec::with_capacity(rooms.len());
    for loaded in rooms {
        let mut room = loaded.room;
        match provider.converge(&room) {
            Ok(status) => room.status = Some(status),
            Err(error) => {
                eprintln!("error: {}: {error}", loaded.source);
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
        served.push(room);
    }
    if let Err(error) = print_rooms(&served) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    tracing::info!(url = %base_url, rooms = gateway.room_keys().len(), "local gateway serving; Ctrl-C to stop");

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

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}
