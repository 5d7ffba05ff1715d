//! `chatroom-operator local FILE...`: every room in the files, served on this machine.

use std::process::ExitCode;

use super::gateway::{BoundGateway, GatewayFlags, bind_gateway};
use super::signal::shutdown_signal;
use super::{EXIT_BAD_INPUT, load_or_report};
use crate::cli::LocalArgs;
use crate::files::print_rooms;
use crate::gateway::ManagementAuth;
use crate::providers::local::LocalProvider;
use crate::secrets::SecretSource;
use crate::status::status_from;

pub async fn run(args: LocalArgs) -> ExitCode {
    let Some(rooms) = load_or_report(&args.files, "started") else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    // On a laptop the management API takes any caller unless keys are given, as local AWS
    // emulators take any credentials; it listens on loopback by default.
    let auth = args
        .management
        .keys()
        .map_or(ManagementAuth::Anyone, ManagementAuth::SigV4);
    let flags = GatewayFlags {
        listen: args.listen,
        public_url: args.public_url.as_ref(),
        management_listen: args.management_listen,
        management: &args.management,
        limits: &args.limits,
        auth,
        room_index: true,
    };
    let BoundGateway {
        gateway,
        clients,
        management,
    } = match bind_gateway(flags).await {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("error: {error}");
            let code = if error.is_bad_input() {
                EXIT_BAD_INPUT
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };

    let secrets = args
        .secrets_dir
        .clone()
        .map_or(SecretSource::Unavailable, SecretSource::Dir);
    let provider = LocalProvider::new(gateway.clone()).with_secrets(secrets);
    let mut served = Vec::with_capacity(rooms.len());
    for loaded in rooms {
        let mut room = loaded.room;
        let report = provider.converge(&room).await;
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
    tracing::info!(
        rooms = gateway.room_keys().len(),
        "local gateway serving; Ctrl-C to stop"
    );
    gateway.serve(clients, management, shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
