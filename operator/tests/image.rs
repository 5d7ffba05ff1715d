//! The operator image as scripts/build-image.sh writes it (`target/image/oci`): unpacked with
//! umoci, checked file by file against the Dockerfile and the chart, and run from its own root
//! filesystem as its own user — a chat room served, and AWS reached over TLS with the image's
//! own CA certificates.
//!
//! Ignored by a plain `cargo test`: scripts/test.sh builds the image first.

mod binary;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use binary::{Running, free_port, repo_root};
use serde_json::Value;
use support::{connect, next_json, send_text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The chart's `podSecurityContext.runAsUser` and `runAsGroup`.
const NONROOT: u32 = 65532;

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The image, unpacked into a folder of its own: `rootfs/` and the runtime `config.json`.
struct Unpacked {
    bundle: PathBuf,
}

impl Unpacked {
    fn new(name: &str) -> Self {
        let layout = repo_root().join("target/image/oci");
        assert!(
            layout.join("index.json").exists(),
            "no image at {}: run scripts/build-image.sh",
            layout.display()
        );
        let bundle =
            std::env::temp_dir().join(format!("chatroom-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&bundle);
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle));
        Self { bundle }
    }

    fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    fn file(&self, path: &str) -> PathBuf {
        self.rootfs().join(path.trim_start_matches('/'))
    }

    /// The entrypoint with `args`, chrooted into the image, as the image's user when this
    /// process may switch users (as root, which scripts/test.sh is), or else in a user
    /// namespace where it is root.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let entrypoint = "/usr/local/bin/chatroom-operator";
        let mut command = if is_root() {
            let mut command = Command::new("chroot");
            command.arg(format!("--userspec={NONROOT}:{NONROOT}"));
            command
        } else {
            let mut command = Command::new("unshare");
            command.args(["-r", "chroot"]);
            command
        };
        command
            .arg(self.rootfs())
            .arg(entrypoint)
            .args(args)
            // Nothing of this process's environment (SSL_CERT_FILE, AWS_*) reaches the image;
            // PATH finds chroot or unshare.
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().copied());
        command
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// The image configuration of the layout's `latest`, and every tag the layout holds.
fn image_config() -> (Value, BTreeSet<String>) {
    let layout = repo_root().join("target/image/oci");
    let read =
        |path: &Path| -> Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read(&layout.join("index.json"));
    let tags: BTreeSet<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let latest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .expect("a latest tag");
    let manifest = read(&blob(latest["digest"].as_str().unwrap()));
    (
        read(&blob(manifest["config"]["digest"].as_str().unwrap())),
        tags,
    )
}

/// The Dockerfile's final stage, instruction by instruction.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let (_, last) = dockerfile.rsplit_once("\nFROM ").unwrap();
    last.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split_once(' '))
        .map(|(instruction, rest)| (instruction.to_owned(), rest.to_owned()))
        .collect()
}

fn chart_values() -> serde_yaml::Value {
    serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("charts/chatroom-operator/values.yaml")).unwrap(),
    )
    .unwrap()
}

/// Every file and link under `root`, as absolute paths inside it.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                let path = entry.path();
                found.insert(format!("/{}", path.strip_prefix(root).unwrap().display()));
            }
        }
    }
    found
}

/// The shared libraries `binary` needs, and theirs, by name.
fn needed_libraries(rootfs: &Path, binary: &Path) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    let mut pending = vec![binary.to_path_buf()];
    while let Some(object) = pending.pop() {
        let dynamic = run(Command::new("readelf").arg("-d").arg(&object));
        for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
            let name = line
                .rsplit_once('[')
                .unwrap()
                .1
                .trim_end_matches(']')
                .to_owned();
            if needed.insert(name.clone()) {
                pending.push(rootfs.join("lib/x86_64-linux-gnu").join(&name));
            }
        }
    }
    needed
}

#[test]
#[ignore = "needs the image; run through scripts/test.sh"]
fn the_image_is_configured_as_the_dockerfile_says_and_the_chart_expects() {
    let (config, tags) = image_config();
    let version = std::fs::read_to_string(repo_root().join("charts/chatroom-operator/Chart.yaml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("appVersion: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert_eq!(tags, BTreeSet::from(["latest".to_owned(), version.clone()]));
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        version
    );

    let stage = dockerfile_final_stage();
    let said = |instruction: &str| {
        stage
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, rest)| rest.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(said("USER"), [config["config"]["User"].as_str().unwrap()]);
    let entrypoint: Value = serde_json::from_str(&said("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, config["config"]["Entrypoint"]);
    let cmd: Value = serde_json::from_str(&said("CMD")[0]).unwrap();
    assert_eq!(cmd, config["config"]["Cmd"]);
    let expose = said("EXPOSE");
    let exposed: BTreeSet<&str> = expose[0].split_whitespace().collect();
    let ports: BTreeSet<&str> = config["config"]["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(exposed, ports);

    let user = &chart_values()["podSecurityContext"];
    assert_eq!(
        config["config"]["User"],
        format!(
            "{}:{}",
            user["runAsUser"].as_u64().unwrap(),
            user["runAsGroup"].as_u64().unwrap()
        ),
        "runAsNonRoot needs the image's user as numbers, the chart's"
    );
}

#[test]
#[ignore = "needs the image; run through scripts/test.sh"]
fn the_image_holds_the_operator_exactly_its_libraries_the_function_and_certificates() {
    let image = Unpacked::new("files");
    let rootfs = image.rootfs();
    let entrypoint = "/usr/local/bin/chatroom-operator";
    let handler_zip = chart_values()["aws"]["handlerZip"]
        .as_str()
        .unwrap()
        .to_owned();

    let libraries = needed_libraries(&rootfs, &image.file(entrypoint));
    let mut expected: BTreeSet<String> = [
        entrypoint,
        handler_zip.as_str(),
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/share/doc/libc6/copyright",
        "/usr/share/doc/gcc-12-base/copyright",
        "/usr/share/doc/ca-certificates/copyright",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    expected.extend(
        libraries
            .iter()
            .map(|l| format!("/lib/x86_64-linux-gnu/{l}")),
    );
    assert!(libraries.contains("libc.so.6"), "{libraries:?}");
    assert_eq!(files_under(&rootfs), expected, "the image's files");

    assert_eq!(
        std::fs::read(image.file(&handler_zip)).unwrap(),
        std::fs::read(repo_root().join("target/lambda/bootstrap/bootstrap.zip")).unwrap(),
        "the function at the chart's aws.handlerZip is the one scripts/build-lambda.sh built"
    );
    let passwd = std::fs::read_to_string(image.file("/etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with(&format!("nonroot:x:{NONROOT}:{NONROOT}:"))),
        "{passwd}"
    );
    let bundle = std::fs::read_to_string(image.file("/etc/ssl/certs/ca-certificates.crt")).unwrap();
    let certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert_eq!(
        certificates,
        bundle.matches("-----END CERTIFICATE-----").count()
    );
    assert!(certificates >= 100, "{certificates} CA certificates");
    let runtime: Value =
        serde_json::from_slice(&std::fs::read(image.bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["user"]["uid"], NONROOT);
    assert_eq!(runtime["process"]["user"]["gid"], NONROOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image; run through scripts/test.sh"]
async fn the_images_entrypoint_serves_a_chat_room_as_its_own_user() {
    let image = Unpacked::new("serve");
    std::fs::copy(
        repo_root().join("examples/chatroom.yaml"),
        image.file("/room.yaml"),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let management = format!("127.0.0.1:{}", free_port());
    let gateway = Running::spawn(image.command(
        &[
            "local",
            "/room.yaml",
            "--listen",
            &listen,
            "--management-listen",
            &management,
        ],
        &[],
    ));
    let pid = gateway.child.id();

    let url = format!("ws://{listen}/default/lobby/dev");
    let mut listener = None;
    for _ in 0..100 {
        if let Ok(Ok((client, _))) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio_tungstenite::connect_async(format!("{url}?name=ada")),
        )
        .await
        {
            listener = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut listener = listener.expect("the image's gateway never accepted a client");
    let mut sender = connect(&format!("{url}?name=grace")).await;
    send_text(
        &mut sender,
        r#"{"action":"onMessage","message":"from inside the image"}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut listener).await["message"],
        "from inside the image"
    );

    if is_root() {
        // The process itself, not only the image's configuration, runs as the chart's user.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        // chroot execs the entrypoint in place, so the pid is the operator's.
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            vec![NONROOT.to_string(); 4],
            "{uid}"
        );
    }
    drop(gateway);
}

/// A TLS endpoint on loopback with a certificate of a CA made for this test: it counts the
/// handshakes that failed and the requests that arrived over one that succeeded.
struct TlsEndpoint {
    port: u16,
    ca_pem: String,
    failed: Arc<Mutex<usize>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TlsEndpoint {
    async fn start() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chatroom image test CA");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (failed, requests) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(Vec::new())));
        let (failures, arrived) = (failed.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, failures, arrived) =
                    (acceptor.clone(), failures.clone(), arrived.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        *failures.lock().unwrap() += 1;
                        return;
                    };
                    let mut head = vec![0; 4096];
                    let read = tls.read(&mut head).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&head[..read]);
                    arrived
                        .lock()
                        .unwrap()
                        .push(text.lines().next().unwrap_or_default().to_owned());
                    // AWS's answer to credentials it does not know (STS, the first call): final,
                    // so the operator stops at once instead of retrying.
                    let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
                                <Message>The security token included in the request is invalid.</Message>\
                                </Error></ErrorResponse>";
                    let answer = format!(
                        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            port,
            ca_pem: ca.pem(),
            failed,
            requests,
        }
    }

    /// `apply` of the example room from inside the image, with AWS at this endpoint, until it
    /// gives up or (bounded) `enough` says so.
    async fn apply_from(&self, image: &Unpacked, enough: impl Fn(&Self) -> bool) {
        let endpoint = format!("https://127.0.0.1:{}", self.port);
        let mut command = image.command(
            &[
                "apply",
                "/room.yaml",
                "--cluster-name",
                "image-test",
                "--timeout",
                "5s",
            ],
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("HANDLER_ZIP", "/opt/chatroom/bootstrap.zip"),
            ],
        );
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut apply = Running::spawn(command);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !apply.has_exited() && !enough(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "apply neither ended nor got far enough"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Dropping it kills it: the SDK would go on retrying a handshake that cannot succeed.
        drop(apply);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image; run through scripts/test.sh"]
async fn the_images_entrypoint_trusts_the_images_ca_certificates_and_no_others() {
    let image = Unpacked::new("tls");
    std::fs::copy(
        repo_root().join("examples/chatroom.yaml"),
        image.file("/room.yaml"),
    )
    .unwrap();
    let endpoint = TlsEndpoint::start().await;

    // The test CA is in no public bundle: every handshake fails (the SDK tries again), and
    // nothing is sent.
    endpoint
        .apply_from(&image, |e| *e.failed.lock().unwrap() >= 2)
        .await;
    assert!(
        *endpoint.failed.lock().unwrap() >= 2,
        "the handshakes did not fail: {:?}",
        endpoint.requests.lock().unwrap()
    );
    assert!(endpoint.requests.lock().unwrap().is_empty());

    // Added to the image's bundle, the same endpoint is trusted: the bundle at
    // /etc/ssl/certs/ca-certificates.crt is what the entrypoint verifies AWS with.
    let bundle = image.file("/etc/ssl/certs/ca-certificates.crt");
    let mut certificates = std::fs::read_to_string(&bundle).unwrap();
    certificates.push_str(&endpoint.ca_pem);
    std::fs::write(&bundle, certificates).unwrap();
    endpoint
        .apply_from(&image, |e| !e.requests.lock().unwrap().is_empty())
        .await;
    let requests = endpoint.requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.ends_with(" HTTP/1.1")),
        "no AWS request arrived over TLS: {requests:?}"
    );
}
