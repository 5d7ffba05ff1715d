//! ChatRoom YAML files, for the commands that run without a cluster (`local`, `apply`, `delete`).
//!
//! Every problem in every file is collected before anything starts, and each names the file,
//! the document within it and the field, so one pass over the output fixes them all.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crd::ChatRoom;
use crate::validate::validate;

const API_VERSION: &str = "chatroom.dev/v1alpha1";
const KIND: &str = "ChatRoom";

/// Where a room came from: a file and the 1-based YAML document in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

#[derive(Debug, Clone)]
pub struct LoadedRoom {
    pub source: Source,
    pub room: ChatRoom,
}

impl LoadedRoom {
    pub fn namespace(&self) -> &str {
        self.room.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.room.metadata.name.as_deref().unwrap_or_default()
    }
}

/// The largest ChatRoom file read: a room is a few hundred bytes, and a file with many still
/// fits; more is a mistake (`/dev/zero`, a log) that would otherwise be read into memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The deepest nesting of flow collections (`[`, `{`) a file may hold. A room needs 3; the
/// YAML parser's time grows with the square of the depth (200,000 levels took 72 s), and its
/// deserializer refuses more than 128 anyway.
pub const MAX_NESTING: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: Source,
        field: String,
        message: String,
    },
    #[error("{file}: no ChatRoom documents")]
    Empty { file: String },
}

/// Prints rooms (with their status) to stdout as one multi-document YAML stream.
pub fn print_rooms(rooms: &[crate::crd::ChatRoom]) -> Result<(), String> {
    use std::io::Write;
    let mut documents = Vec::with_capacity(rooms.len());
    for room in rooms {
        documents.push(serde_yaml::to_string(room).map_err(|e| {
            let (namespace, name) = room.identity();
            format!("cannot print {namespace}/{name}: {e}")
        })?);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", documents.join("---\n").trim_end())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// All rooms in `paths`, or every problem found in them.
pub fn load_rooms(paths: &[PathBuf]) -> Result<Vec<LoadedRoom>, Vec<LoadError>> {
    let mut rooms = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match read_room_file(path) {
            Ok(text) => {
                let before = rooms.len() + errors.len();
                parse_documents(path, &text, &mut rooms, &mut errors);
                if rooms.len() + errors.len() == before {
                    errors.push(LoadError::Empty {
                        file: path.display().to_string(),
                    });
                }
            }
            Err(reason) => errors.push(LoadError::Unreadable {
                file: path.display().to_string(),
                reason,
            }),
        }
    }
    errors.extend(duplicates(&rooms));
    if errors.is_empty() {
        Ok(rooms)
    } else {
        Err(errors)
    }
}

/// A room file's text: a regular file (not a FIFO, a device or a directory, which could block
/// or never end), at most [`MAX_FILE_BYTES`], UTF-8, nested at most [`MAX_NESTING`] deep.
fn read_room_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = open_without_blocking(path).map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err(format!(
            "not a regular file ({}); ChatRoom files are read whole, once",
            file_kind(&metadata)
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    if let Some(depth) = flow_depth_over(&text, MAX_NESTING) {
        return Err(format!(
            "nested deeper than {MAX_NESTING} levels (at least {depth})"
        ));
    }
    Ok(text)
}

/// Opens for reading without waiting for a writer: a FIFO would otherwise block the open
/// itself until someone writes to it.
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if metadata.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// The depth of `[` and `{` reached, once it exceeds `limit`. Quotes are not parsed: brackets
/// inside strings count too, which can only refuse a file that no ChatRoom needs.
fn flow_depth_over(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn parse_documents(
    path: &Path,
    text: &str,
    rooms: &mut Vec<LoadedRoom>,
    errors: &mut Vec<LoadError>,
) {
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = Source {
            file: path.to_owned(),
            document: index + 1,
        };
        let invalid = |field: &str, message: String| LoadError::Invalid {
            origin: source.clone(),
            field: field.to_owned(),
            message,
        };
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(serde_yaml::Value::Null) => continue,
            Ok(value) => value,
            Err(error) => {
                errors.push(invalid("(yaml)", error.to_string()));
                // A syntax error leaves the parser unable to find the next document.
                break;
            }
        };
        match parse_room(&value) {
            Ok(mut room) => {
                room.metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_owned());
                // Status is the operator's to write; a file's copy is never read.
                room.status = None;
                match validate(&room) {
                    Ok(()) => rooms.push(LoadedRoom { source, room }),
                    Err(invalid_spec) => errors.extend(
                        invalid_spec
                            .0
                            .into_iter()
                            .map(|e| invalid(&e.field, e.message)),
                    ),
                }
            }
            Err(problems) => {
                errors.extend(
                    problems
                        .into_iter()
                        .map(|(field, message)| invalid(&field, message)),
                );
            }
        }
    }
}

/// The room in one document, or its problems as (field, message).
fn parse_room(value: &serde_yaml::Value) -> Result<ChatRoom, Vec<(String, String)>> {
    let text_at = |key: &str| value.get(key).and_then(serde_yaml::Value::as_str);
    match (text_at("apiVersion"), text_at("kind")) {
        (Some(API_VERSION), Some(KIND)) => {}
        (api_version, kind) => {
            return Err(vec![(
                "kind".to_owned(),
                format!(
                    "expected apiVersion {API_VERSION} and kind {KIND}, got apiVersion {} and kind {}",
                    api_version.unwrap_or("(none)"),
                    kind.unwrap_or("(none)")
                ),
            )]);
        }
    }

    let mut unknown = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path<'_>| {
        let path = path.to_string();
        // The derived type checks apiVersion and kind without consuming them; status is
        // ignored on purpose.
        let ours = ["apiVersion", "kind", "status"];
        if !ours.contains(&path.as_str()) && !path.starts_with("status.") {
            unknown.push(path);
        }
    };
    let ignoring = serde_ignored::Deserializer::new(value.clone(), &mut note_unknown);
    let room: Result<ChatRoom, _> = serde_path_to_error::deserialize(ignoring);
    match room {
        Err(error) => Err(vec![field_problem(
            &error.path().to_string(),
            error.inner().to_string(),
        )]),
        Ok(_) if !unknown.is_empty() => Err(unknown
            .into_iter()
            .map(|field| (field, "unknown field".to_owned()))
            .collect()),
        Ok(room) => Ok(room),
    }
}

/// Names a missing field by its own path, as `spec: is required`, rather than by its parent.
fn field_problem(path: &str, message: String) -> (String, String) {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field.to_owned());
    match missing {
        Some(field) if path == "." => (field, "is required".to_owned()),
        Some(field) => (format!("{path}.{field}"), "is required".to_owned()),
        None => (path.to_owned(), message),
    }
}

fn duplicates(rooms: &[LoadedRoom]) -> Vec<LoadError> {
    let mut first_seen: HashMap<(&str, &str), &Source> = HashMap::new();
    let mut errors = Vec::new();
    for room in rooms {
        let key = (room.namespace(), room.name());
        match first_seen.get(&key) {
            Some(first) => errors.push(LoadError::Invalid {
                origin: room.source.clone(),
                field: "metadata.name".to_owned(),
                message: format!("ChatRoom {}/{} is already defined in {first}", key.0, key.1),
            }),
            None => {
                first_seen.insert(key, &room.source);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Vec<LoadedRoom>, Vec<String>) {
        let mut rooms = Vec::new();
        let mut errors = Vec::new();
        parse_documents(Path::new("rooms.yaml"), text, &mut rooms, &mut errors);
        (rooms, errors.iter().map(ToString::to_string).collect())
    }

    const LOBBY: &str =
        "apiVersion: chatroom.dev/v1alpha1\nkind: ChatRoom\nmetadata: {name: lobby}\n";
    const EMPTY_SPEC: &str = "spec: {}\n";

    #[test]
    fn a_minimal_room_gets_every_default() {
        let (rooms, errors) = load(&format!("{LOBBY}{EMPTY_SPEC}"));
        assert!(errors.is_empty(), "{errors:?}");
        let room = &rooms[0].room;
        assert_eq!(room.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(room.spec, crate::crd::ChatRoomSpec::default());
    }

    #[test]
    fn several_documents_are_read_and_blank_ones_skipped() {
        let lobby = format!("{LOBBY}{EMPTY_SPEC}");
        let text = format!("---\n{lobby}---\n---\n{}", lobby.replace("lobby", "garden"));
        let (rooms, errors) = load(&text);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<_> = rooms
            .iter()
            .map(|r| (r.name(), r.source.document))
            .collect();
        assert_eq!(names, [("lobby", 1), ("garden", 3)]);
    }

    #[test]
    fn a_wrong_kind_is_named() {
        let (_, errors) = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
        assert_eq!(
            errors,
            [
                "rooms.yaml (document 1): kind: expected apiVersion chatroom.dev/v1alpha1 and kind ChatRoom, got apiVersion v1 and kind ConfigMap"
            ]
        );
    }

    #[test]
    fn spec_is_required_as_in_the_crd() {
        let (_, errors) = load(LOBBY);
        assert_eq!(errors, ["rooms.yaml (document 1): spec: is required"]);
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_path() {
        let (_, errors) = load(&format!("{LOBBY}spec:\n  function:\n    memoryMB: big\n"));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "rooms.yaml (document 1): spec.function.memoryMB: invalid type: string \"big\""
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn an_unknown_field_is_named_rather_than_dropped() {
        let (_, errors) = load(&format!("{LOBBY}spec:\n  messageRoot: x\n"));
        assert_eq!(
            errors,
            ["rooms.yaml (document 1): spec.messageRoot: unknown field"]
        );
    }

    #[test]
    fn a_rule_broken_in_the_second_document_names_that_document() {
        let text = format!(
            "{LOBBY}{EMPTY_SPEC}---\n{}spec: {{stage: 'no spaces'}}\n",
            LOBBY.replace("lobby", "b")
        );
        let (rooms, errors) = load(&text);
        assert_eq!(rooms.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("rooms.yaml (document 2): spec.stage: must be 1-128 characters"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_yaml_syntax_error_is_reported_with_its_position() {
        let (_, errors) = load("apiVersion: [unclosed\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("rooms.yaml (document 1): (yaml):") && errors[0].contains("line"),
            "{errors:?}"
        );
    }

    #[test]
    fn two_rooms_with_the_same_namespace_and_name_are_refused() {
        let dir = std::env::temp_dir().join(format!("chatroom-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
        let lobby = format!("{LOBBY}{EMPTY_SPEC}");
        std::fs::write(&a, &lobby).unwrap();
        std::fs::write(
            &b,
            lobby.replace("{name: lobby}", "{name: lobby, namespace: default}"),
        )
        .unwrap();
        let errors = load_rooms(&[a.clone(), b.clone()]).unwrap_err();
        assert_eq!(errors.len(), 1);
        let message = errors[0].to_string();
        assert!(message.starts_with(&format!("{} (document 1): metadata.name: ChatRoom default/lobby is already defined in {} (document 1)", b.display(), a.display())), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let errors = load_rooms(&[PathBuf::from("/nonexistent/room.yaml")]).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("/nonexistent/room.yaml: cannot read:"),
            "{errors:?}"
        );
    }
}
