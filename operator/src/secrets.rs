//! Where a room's Secret keys come from (`spec.backend.secretRef`): the cluster's Secrets in
//! the room's namespace for the controller, a directory laid out as Kubernetes mounts a Secret
//! (`{dir}/{namespace}/{name}/{key}`) for the commands that run from files.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;

use crate::crd::{ChatRoom, SecretKeyRef};

/// The most bytes a key may have; an HMAC key needs 32.
pub const MAX_KEY_BYTES: usize = 4096;

#[derive(Clone, Default)]
pub enum SecretSource {
    /// No Secrets: a room that names one is not ready.
    #[default]
    Unavailable,
    Dir(PathBuf),
    Cluster(kube::Client),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable => f.write_str("Unavailable"),
            Self::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            Self::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.backend.secretRef: {0}")]
pub struct SecretError(String);

impl SecretSource {
    /// The key of `room`'s backend, if its spec names one (`spec.backend.secretRef`), from
    /// the room's namespace.
    pub async fn backend_key(&self, room: &ChatRoom) -> Result<Option<Vec<u8>>, SecretError> {
        let secret = room
            .spec
            .backend
            .as_ref()
            .and_then(|b| b.secret_ref.as_ref());
        match secret {
            None => Ok(None),
            Some(secret) => self.key(&room.identity().0, secret).await.map(Some),
        }
    }

    /// The key's bytes, without the trailing newline a file written by an editor or `echo`
    /// ends with (in both sources alike, so that one key signs the same everywhere).
    pub async fn key(
        &self,
        namespace: &str,
        secret: &SecretKeyRef,
    ) -> Result<Vec<u8>, SecretError> {
        let (name, key) = (&secret.name, &secret.key);
        let bytes = match self {
            Self::Unavailable => {
                return Err(SecretError(format!(
                    "Secret {namespace}/{name} cannot be read here: give --secrets-dir DIR with the key in DIR/{namespace}/{name}/{key}"
                )));
            }
            Self::Dir(dir) => {
                if key == "." || key == ".." {
                    return Err(SecretError(format!("{key:?} is not a key")));
                }
                let path = dir.join(namespace).join(name).join(key);
                read_bounded(&path)
                    .map_err(|reason| SecretError(format!("{}: {reason}", path.display())))?
            }
            Self::Cluster(client) => {
                let api = kube::Api::<Secret>::namespaced(client.clone(), namespace);
                let found = api.get_opt(name).await.map_err(|e| {
                    SecretError(format!("cannot read Secret {namespace}/{name}: {e}"))
                })?;
                let Some(found) = found else {
                    return Err(SecretError(format!(
                        "Secret {namespace}/{name} does not exist"
                    )));
                };
                let Some(value) = found.data.and_then(|mut data| data.remove(key)) else {
                    return Err(SecretError(format!(
                        "Secret {namespace}/{name} has no key {key:?}"
                    )));
                };
                value.0
            }
        };
        let trimmed = trim_newline(bytes);
        if trimmed.is_empty() || trimmed.len() > MAX_KEY_BYTES {
            return Err(SecretError(format!(
                "the key {key:?} of Secret {namespace}/{name} must be 1-{MAX_KEY_BYTES} bytes, has {}",
                trimmed.len()
            )));
        }
        Ok(trimmed)
    }
}

fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_BYTES as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[tokio::test]
    async fn a_directory_holds_keys_as_a_mounted_secret_does() {
        let dir = std::env::temp_dir().join(format!("chatroom-secrets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("default/chat-backend")).unwrap();
        std::fs::write(dir.join("default/chat-backend/hmac"), "s3cret\n").unwrap();
        std::fs::write(dir.join("default/chat-backend/empty"), "\n").unwrap();
        std::fs::write(
            dir.join("default/chat-backend/huge"),
            "k".repeat(MAX_KEY_BYTES + 1),
        )
        .unwrap();
        let source = SecretSource::Dir(dir.clone());

        assert_eq!(
            source.key("default", &secret("chat-backend", "hmac")).await,
            Ok(b"s3cret".to_vec())
        );
        let missing = source
            .key("other", &secret("chat-backend", "hmac"))
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("other/chat-backend/hmac"),
            "{missing}"
        );
        let empty = source
            .key("default", &secret("chat-backend", "empty"))
            .await
            .unwrap_err();
        assert!(
            empty.to_string().contains("must be 1-4096 bytes"),
            "{empty}"
        );
        let huge = source
            .key("default", &secret("chat-backend", "huge"))
            .await
            .unwrap_err();
        assert!(huge.to_string().contains("has 4097"), "{huge}");
        let nowhere = SecretSource::Unavailable
            .key("default", &secret("chat-backend", "hmac"))
            .await
            .unwrap_err();
        assert!(nowhere.to_string().contains("--secrets-dir"), "{nowhere}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
