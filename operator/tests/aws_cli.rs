//! `chatroom-operator apply` and `delete` against moto, as a pipeline would run them.

mod aws_support;
mod binary;

use std::process::{Command, Output};

use binary::{binary, repo_root};

fn run(args: &[&str]) -> Output {
    let mut command: Command = binary();
    command
        .args(args)
        .envs(aws_support::operator_moto_env("ci"))
        .env("RUST_LOG", "info");
    command.output().unwrap()
}

struct Files {
    dir: std::path::PathBuf,
}

impl Files {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("chatroom-aws-cli-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bootstrap.zip"), b"a bootstrap.zip").unwrap();
        Self { dir }
    }

    fn room(&self, name: &str, extra_spec: &str) -> String {
        let example = std::fs::read_to_string(repo_root().join("examples/chatroom.yaml")).unwrap();
        let text = example.replace(
            "name: lobby",
            &format!("name: {name}-{}", std::process::id()),
        ) + extra_spec;
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn zip(&self) -> String {
        self.dir.join("bootstrap.zip").to_str().unwrap().to_owned()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code 2 (bad input) with a message that names `what`.
fn assert_refused(output: &Output, what: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(what), "expected {what:?} in:\n{stderr}");
}

#[test]
#[ignore = "needs moto; run through scripts/test.sh"]
fn apply_prints_ready_rooms_reapply_changes_nothing_and_delete_tears_down() {
    let files = Files::new("cycle");
    let room = files.room("cli", "");
    let zip = files.zip();

    let applied = run(&[
        "apply",
        &room,
        "--handler-zip",
        &zip,
        "--cluster-name",
        "ci",
    ]);
    let (stdout, stderr) = (text(&applied.stdout), text(&applied.stderr));
    assert!(applied.status.success(), "{stderr}");
    let printed: serde_yaml::Value = serde_yaml::from_str(&stdout).unwrap();
    let url = printed["status"]["websocketUrl"].as_str().unwrap();
    assert!(
        url.starts_with("wss://") && url.ends_with(".execute-api.us-east-1.amazonaws.com/dev"),
        "{url}"
    );
    assert_eq!(
        printed["status"]["conditions"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"],
        "True"
    );
    for step in [
        "table",
        "api",
        "role",
        "log-group",
        "function",
        "integration",
        "routes",
        "permission",
        "stage",
    ] {
        assert!(
            stderr.contains(&format!("step={step}")),
            "progress for {step} on stderr:\n{stderr}"
        );
    }

    let again = run(&[
        "apply",
        &room,
        "--handler-zip",
        &zip,
        "--cluster-name",
        "ci",
    ]);
    assert!(again.status.success());
    assert!(
        !text(&again.stderr).contains("converged"),
        "a second apply changes nothing:\n{}",
        text(&again.stderr)
    );

    let deleted = run(&["delete", &room, "--cluster-name", "ci"]);
    let stderr = text(&deleted.stderr);
    assert!(deleted.status.success(), "{stderr}");
    assert!(
        stderr.contains("deleted api, function, log-group, role, table"),
        "{stderr}"
    );
    let twice = run(&["delete", &room, "--cluster-name", "ci"]);
    assert!(twice.status.success());
    assert!(text(&twice.stderr).contains("nothing left to delete"));
}

#[test]
#[ignore = "needs moto; run through scripts/test.sh"]
fn a_room_aws_refuses_exits_non_zero_with_the_aws_error() {
    let files = Files::new("refused");
    let room = files.room(
        "refused",
        "  function:\n    roleArn: arn:aws:iam::123456789012:role/chatroom-not-there\n",
    );

    let applied = run(&[
        "apply",
        &room,
        "--handler-zip",
        &files.zip(),
        "--cluster-name",
        "ci",
    ]);

    assert_eq!(applied.status.code(), Some(1));
    let stderr = text(&applied.stderr);
    assert!(
        stderr.contains("not ready: InvalidParameterValueException"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot be assumed by Lambda"), "{stderr}");
    let printed: serde_yaml::Value = serde_yaml::from_str(&text(&applied.stdout)).unwrap();
    let function = printed["status"]["conditions"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "FunctionReady")
        .unwrap()
        .clone();
    assert_eq!(function["status"], "False");
    run(&["delete", &room]);
}

#[test]
fn bad_files_and_a_missing_zip_exit_2_before_any_aws_call() {
    let files = Files::new("bad");
    let bad = files.room("bad", "  region: Europe\n");
    let output = binary()
        .args(["apply", &bad, "--handler-zip", &files.zip()])
        .output()
        .unwrap();
    assert_refused(&output, "spec.region: must be an AWS region");

    let good = files.room("good", "");
    let output = binary()
        .args(["apply", &good])
        .env_remove("HANDLER_ZIP")
        .output()
        .unwrap();
    assert_refused(&output, "--handler-zip is required");
    // Named before the environment is looked at: no region here must not hide the bad path.
    let output = binary()
        .args(["apply", &good, "--handler-zip", "/nonexistent.zip"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .unwrap();
    assert_refused(&output, "--handler-zip /nonexistent.zip:");
}
