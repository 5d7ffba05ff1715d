//! The `chatroom-operator` binary: `crd`, and `local` from start to SIGTERM.

mod binary;

use std::path::Path;

use binary::{LocalGateway, binary, repo_root};
use futures::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

#[test]
fn the_committed_crd_is_what_the_types_generate() {
    let output = binary().arg("crd").output().unwrap();
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(repo_root().join("crds/chatroom.dev_chatrooms.yaml")).unwrap();
    assert!(
        String::from_utf8(output.stdout).unwrap() == committed,
        "crds/chatroom.dev_chatrooms.yaml is out of date: run `cargo run -p chatroom-operator -- crd > crds/chatroom.dev_chatrooms.yaml`"
    );
}

#[test]
fn the_committed_iam_policies_are_what_iam_policy_prints_for_the_default_cluster() {
    for (document, file) in [
        ("chatroom-operator", "docs/iam-policy.json"),
        (
            "chatroom-operator-apigateway",
            "docs/iam-policy-apigateway.json",
        ),
    ] {
        let output = binary()
            .args(["iam-policy", "--document", document])
            .env_remove("CLUSTER_NAME")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let committed = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(
            String::from_utf8(output.stdout).unwrap() == committed,
            "{file} is out of date: run `cargo run -p chatroom-operator -- iam-policy --document {document} > {file}`"
        );
    }
    let refused = binary()
        .args(["iam-policy", "--cluster-name", "a<b"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cluster name \"a<b\""),
        "{refused:?}"
    );
}

/// `kubectl explain` has something to say about every field.
#[test]
fn every_field_of_the_crd_has_a_description() {
    fn undescribed(schema: &serde_yaml::Value, path: &str, found: &mut Vec<String>) {
        if let Some(properties) = schema["properties"].as_mapping() {
            for (name, field) in properties {
                let path = format!("{path}.{}", name.as_str().unwrap());
                if field["description"].as_str().is_none_or(str::is_empty) {
                    found.push(path.clone());
                }
                undescribed(field, &path, found);
            }
        }
        if schema["items"].is_mapping() {
            undescribed(&schema["items"], &format!("{path}[]"), found);
        }
        if schema["additionalProperties"].is_mapping() {
            undescribed(
                &schema["additionalProperties"],
                &format!("{path}{{}}"),
                found,
            );
        }
    }
    let crd: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("crds/chatroom.dev_chatrooms.yaml")).unwrap(),
    )
    .unwrap();
    let mut found = Vec::new();
    for version in crd["spec"]["versions"].as_sequence().unwrap() {
        let schema = &version["schema"]["openAPIV3Schema"];
        undescribed(schema, version["name"].as_str().unwrap(), &mut found);
    }
    assert!(found.is_empty(), "fields without a description: {found:?}");
}

#[test]
fn bad_input_names_the_file_and_field_exits_2_and_starts_nothing() {
    let dir = tempdir("bad-input");
    let good = dir.join("good.yaml");
    std::fs::copy(repo_root().join("examples/chatroom.yaml"), &good).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: chatroom.dev/v1alpha1\nkind: ChatRoom\nmetadata: {name: lobby}\nspec: {}\n---\n\
         apiVersion: chatroom.dev/v1alpha1\nkind: ChatRoom\nmetadata: {name: garden}\nspec:\n  function: {timeoutSeconds: 30}\n",
    )
    .unwrap();
    let port = binary::free_port();
    let output = binary()
        .args([
            "local",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
            "/nonexistent.yaml",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "nothing is printed as a result");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let expected = [
        format!(
            "{} (document 2): spec.function.timeoutSeconds: must be between 1 and 29",
            bad.display()
        ),
        "/nonexistent.yaml: cannot read".to_owned(),
        format!(
            "{} (document 1): metadata.name: ChatRoom default/lobby is already defined in {} (document 1)",
            bad.display(),
            good.display()
        ),
    ];
    for line in expected {
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrintedStatus {
    websocket_url: String,
    callback_url: String,
    conditions: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct PrintedRoom {
    status: PrintedStatus,
}

#[tokio::test]
async fn local_prints_each_room_with_its_urls_serves_it_and_stops_cleanly_on_sigterm() {
    let dir = tempdir("two-rooms");
    let rooms = dir.join("rooms.yaml");
    let example = std::fs::read_to_string(repo_root().join("examples/chatroom.yaml")).unwrap();
    std::fs::write(
        &rooms,
        format!(
            "{example}---\n{}",
            example
                .replace("name: lobby", "name: garden")
                .replace("stage: dev", "stage: prod")
        ),
    )
    .unwrap();
    let gateway = LocalGateway::start(&[Path::new(&rooms)], &[]);
    let management_port = gateway.management_port;

    let url = gateway.url("default/garden/prod");
    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || gateway.terminate())
        .await
        .unwrap();

    let close = tokio::time::timeout(std::time::Duration::from_secs(10), client.next())
        .await
        .unwrap();
    let Some(Ok(Message::Close(Some(frame)))) = close else {
        panic!("expected a close frame, got {close:?}")
    };
    assert_eq!(u16::from(frame.code), 1001);
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );

    let printed: Vec<PrintedRoom> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|doc| PrintedRoom::deserialize(doc).unwrap())
        .collect();
    assert_eq!(printed.len(), 2, "{stdout}");
    assert_eq!(printed[1].status.websocket_url, url);
    assert_eq!(
        printed[1].status.callback_url,
        format!(
            "http://127.0.0.1:{}/default/garden/prod/@connections",
            management_port
        ),
        "callbacks go to the management listener, never the clients' port"
    );
    assert!(
        printed[0]
            .status
            .websocket_url
            .ends_with("/default/lobby/dev")
    );
    assert_eq!(printed[0].status.conditions[0]["type"], "Ready");
    assert_eq!(printed[0].status.conditions[0]["status"], "True");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chatroom-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_example_is_valid_yaml_and_every_example_room_loads() {
    let examples = repo_root().join("examples");
    let mut files = Vec::new();
    let mut pending = vec![examples];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if value["kind"] == "ChatRoom" {
                let rooms = chatroom_operator::files::load_rooms(std::slice::from_ref(file));
                assert!(rooms.is_ok(), "{}: {:?}", file.display(), rooms.err());
            }
        }
    }
}

#[test]
fn a_public_url_that_is_not_ws_or_http_is_refused_at_start() {
    let room = repo_root().join("examples/chatroom.yaml");
    for bad in [
        "chat.example.com",
        "ftp://chat.example.com",
        "https://chat.example.com/?x=1",
    ] {
        let output = binary()
            .args(["local", room.to_str().unwrap(), "--public-url", bad])
            .args(["--listen", &format!("127.0.0.1:{}", binary::free_port())])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--public-url"), "{bad}: {stderr}");
    }
}

#[test]
fn the_public_and_management_urls_give_the_room_and_callback_urls() {
    let room = repo_root().join("examples/chatroom.yaml");
    let gateway = LocalGateway::start(
        &[&room],
        &[
            "--public-url",
            "wss://chat.example.com/rooms/",
            "--management-url",
            "http://chatroom-operator-management.chatroom-system.svc:8082",
        ],
    );
    let (_, stdout, _) = gateway.terminate();
    let printed: serde_yaml::Value = serde_yaml::from_str(&stdout).unwrap();
    assert_eq!(
        printed["status"]["websocketUrl"],
        "wss://chat.example.com/rooms/default/lobby/dev"
    );
    assert_eq!(
        printed["status"]["callbackUrl"],
        "http://chatroom-operator-management.chatroom-system.svc:8082/default/lobby/dev/@connections"
    );
}
