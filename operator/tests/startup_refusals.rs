//! What the binary refuses at start, at once, with exit 2 and a message naming the flag or
//! file at fault: limits that cannot work, files that are not room files, and one-shot AWS
//! commands with no region or credentials.

mod binary;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use binary::{binary, repo_root};

/// Runs to completion within `within`; a process that would block or read for ever fails.
fn run_within(mut command: Command, within: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("still running after {within:?}: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

fn assert_refused(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{needle}: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    assert!(
        stderr.len() < 600,
        "a short message, not a dump ({} bytes):\n{stderr}",
        stderr.len()
    );
}

fn local(args: &[&str]) -> Command {
    let mut command = binary();
    command.arg("local").args(args).args([
        "--listen",
        "127.0.0.1:0",
        "--management-listen",
        "127.0.0.1:0",
    ]);
    command
}

fn room() -> String {
    repo_root()
        .join("examples/chatroom.yaml")
        .display()
        .to_string()
}

#[test]
fn limits_that_cannot_work_are_refused_by_flag() {
    let room = room();
    for (flags, needle) in [
        (vec!["--idle-timeout", "400000000000y"], "--idle-timeout"),
        (
            vec!["--max-connection-duration", "0s"],
            "--max-connection-duration",
        ),
        (vec!["--header-timeout", "2d"], "--header-timeout"),
        (
            vec!["--max-message-bytes", "0"],
            "--max-message-bytes: must be above 0",
        ),
        (
            vec!["--outbound-queue-bytes", "0"],
            "--outbound-queue-bytes: must be above 0",
        ),
        (
            vec!["--memory-budget-bytes", "0"],
            "--memory-budget-bytes: 0 is less than one connection needs",
        ),
        (
            vec![
                "--max-frame-bytes",
                "262144",
                "--outbound-queue-bytes",
                "1048576",
            ],
            "--max-frame-bytes: 262144 is above --max-message-bytes 131072",
        ),
        (
            vec!["--new-connections-per-second", "0"],
            "--new-connections-per-second",
        ),
        (
            vec!["--memory-budget-bytes", "1"],
            "--memory-budget-bytes: 1 is less than one connection needs",
        ),
        (
            vec!["--account-rate-limit", "1e-300"],
            "--account-rate-limit: must be at least one request an hour",
        ),
    ] {
        let mut args = vec![room.as_str()];
        args.extend(flags);
        let (output, _) = run_within(local(&args), Duration::from_secs(20));
        assert_refused(&output, needle);
    }
}

#[test]
fn files_that_are_no_room_files_are_refused_without_reading_them_whole() {
    let dir = std::env::temp_dir().join(format!("chatroom-refusals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let large = dir.join("large.yaml");
    let room_text = std::fs::read_to_string(room()).unwrap();
    std::fs::write(&large, room_text.repeat(1024 * 1024 / room_text.len() + 2)).unwrap();
    let deep = dir.join("deep.yaml");
    let levels = 200_000;
    std::fs::write(
        &deep,
        format!(
            "apiVersion: chatroom.dev/v1alpha1\nkind: ChatRoom\nmetadata: {{name: deep}}\nspec: {}{}\n",
            "[".repeat(levels),
            "]".repeat(levels)
        ),
    )
    .unwrap();
    let fifo = dir.join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());

    for (file, needle) in [
        (large.display().to_string(), "larger than 1048576 bytes"),
        (deep.display().to_string(), "nested deeper than 128 levels"),
        (fifo.display().to_string(), "not a regular file (a FIFO)"),
        ("/dev/zero".to_owned(), "not a regular file (a device)"),
        (
            dir.display().to_string(),
            "not a regular file (a directory)",
        ),
    ] {
        let (output, took) = run_within(local(&[file.as_str()]), Duration::from_secs(20));
        assert_refused(&output, &format!("{file}: cannot read: {needle}"));
        assert!(took < Duration::from_secs(5), "{file} took {took:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn apply_and_delete_without_a_region_or_credentials_stop_at_once_naming_what_is_missing() {
    let room = room();
    let zip = repo_root().join("Cargo.toml");
    let aws_free = |command: &mut Command| {
        for variable in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ] {
            command.env_remove(variable);
        }
        // No shared files, and no instance metadata service to wait for.
        command
            .env("AWS_CONFIG_FILE", "/nonexistent/config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    };

    let mut no_region = binary();
    no_region
        .args(["apply", &room, "--handler-zip", zip.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y");
    aws_free(&mut no_region);
    no_region
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y");
    let (output, took) = run_within(no_region, Duration::from_secs(30));
    assert_refused(&output, "no AWS region for");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    let mut no_credentials = binary();
    no_credentials.args(["delete", &room]);
    aws_free(&mut no_credentials);
    no_credentials.env("AWS_REGION", "eu-west-1");
    let (output, took) = run_within(no_credentials, Duration::from_secs(30));
    assert_refused(&output, "no AWS credentials");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}
