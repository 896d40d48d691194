//! The body of `add`: the given files and folders as one `multipart/form-data` stream, read
//! from disk as it is sent (a file is never held whole), in the part layout Go's ctl sends:
//! every part named `file`, its `filename` the query-escaped path relative to the argument's
//! parent, folders as `application/x-directory` parts before their contents.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};

/// Read size for file contents.
const CHUNK: usize = 256 * 1024;

/// One part of the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadPart {
    /// A folder, by its relative path.
    Directory(String),
    /// A file: its relative path and where it is on disk.
    File(String, PathBuf),
}

/// Lists the parts for `paths`: files as they are, folders (with `recursive`) walked in name
/// order. Hidden names (`.x`) are left out unless `hidden`. Errors name the path.
pub fn plan(paths: &[String], recursive: bool, hidden: bool) -> Result<Vec<UploadPart>, String> {
    let mut parts = Vec::new();
    for arg in paths {
        let path = Path::new(arg);
        let metadata = std::fs::metadata(path).map_err(|e| format!("{arg}: {e}"))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.trim_end_matches('/').to_string());
        if metadata.is_dir() {
            if !recursive {
                return Err(format!("{arg} is a directory, use -r to add it"));
            }
            walk(path, &name, hidden, &mut parts)?;
        } else {
            parts.push(UploadPart::File(name, path.to_path_buf()));
        }
    }
    Ok(parts)
}

fn walk(dir: &Path, relative: &str, hidden: bool, parts: &mut Vec<UploadPart>) -> Result<(), String> {
    parts.push(UploadPart::Directory(relative.to_string()));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !hidden && name.starts_with('.') {
            continue;
        }
        let child = format!("{relative}/{name}");
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &child, hidden, parts)?;
        } else {
            parts.push(UploadPart::File(child, path));
        }
    }
    Ok(())
}

/// The total size of the files in `parts`, for the progress display.
pub fn total_bytes(parts: &[UploadPart]) -> u64 {
    parts
        .iter()
        .filter_map(|p| match p {
            UploadPart::File(_, path) => std::fs::metadata(path).ok().map(|m| m.len()),
            UploadPart::Directory(_) => None,
        })
        .sum()
}

/// The streaming multipart body of `parts`.
pub struct MultipartBody {
    boundary: String,
    parts: VecDeque<UploadPart>,
    current: Option<File>,
    finished: bool,
}

impl MultipartBody {
    /// A body for `parts`; its content type is [`MultipartBody::content_type`].
    pub fn new(parts: Vec<UploadPart>) -> MultipartBody {
        let mut seed = [0u8; 12];
        // Not security-relevant; only has to differ from the content, which a fixed long
        // token practically does.
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = b'a' + ((std::process::id() as usize + i * 7) % 26) as u8;
        }
        MultipartBody {
            boundary: format!("ipfs-cluster-ctl-{}", String::from_utf8_lossy(&seed)),
            parts: parts.into(),
            current: None,
            finished: false,
        }
    }

    /// `multipart/form-data; boundary=...`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    fn header(&self, filename: &str, content_type: &str) -> Bytes {
        let escaped: String = url::form_urlencoded::byte_serialize(filename.as_bytes()).collect();
        Bytes::from(format!(
            "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{escaped}\"\r\nContent-Type: {content_type}\r\n\r\n",
            self.boundary
        ))
    }

    fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if let Some(file) = &mut self.current {
            let mut buffer = vec![0u8; CHUNK];
            return match file.read(&mut buffer) {
                Ok(0) => {
                    self.current = None;
                    Some(Ok(Bytes::from_static(b"\r\n")))
                }
                Ok(n) => {
                    buffer.truncate(n);
                    Some(Ok(Bytes::from(buffer)))
                }
                Err(e) => Some(Err(e)),
            };
        }
        match self.parts.pop_front() {
            Some(UploadPart::Directory(name)) => {
                let mut header = self.header(&name, "application/x-directory").to_vec();
                header.extend_from_slice(b"\r\n");
                Some(Ok(Bytes::from(header)))
            }
            Some(UploadPart::File(name, path)) => match File::open(&path) {
                Ok(file) => {
                    self.current = Some(file);
                    Some(Ok(self.header(&name, "application/octet-stream")))
                }
                Err(e) => Some(Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))),
            },
            None if !self.finished => {
                self.finished = true;
                Some(Ok(Bytes::from(format!("--{}--\r\n", self.boundary))))
            }
            None => None,
        }
    }
}

impl Body for MultipartBody {
    type Data = Bytes;
    type Error = std::io::Error;

    // Reads are synchronous: this is a command-line tool whose runtime only drives this request.
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(self.next_chunk().map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_text(parts: Vec<UploadPart>) -> (String, String) {
        let mut body = MultipartBody::new(parts);
        let boundary = body.boundary.clone();
        let mut all = Vec::new();
        while let Some(chunk) = body.next_chunk() {
            all.extend_from_slice(&chunk.unwrap());
        }
        (String::from_utf8(all).unwrap(), boundary)
    }

    #[test]
    fn folders_are_walked_in_order_without_hidden_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("index.html"), b"<html>").unwrap();
        std::fs::write(root.join("css/a.css"), b"a{}").unwrap();
        std::fs::write(root.join(".secret"), b"x").unwrap();
        let arg = root.to_string_lossy().into_owned();
        assert!(plan(std::slice::from_ref(&arg), false, false)
            .unwrap_err()
            .contains("use -r"));
        let parts = plan(std::slice::from_ref(&arg), true, false).unwrap();
        let names: Vec<String> = parts
            .iter()
            .map(|p| match p {
                UploadPart::Directory(n) => format!("{n}/"),
                UploadPart::File(n, _) => n.clone(),
            })
            .collect();
        assert_eq!(names, ["site/", "site/css/", "site/css/a.css", "site/index.html"]);
        assert_eq!(plan(&[arg], true, true).unwrap().len(), 5);
        assert_eq!(total_bytes(&parts), 9);
        assert!(plan(&["/no/such/file".into()], false, false)
            .unwrap_err()
            .contains("/no/such/file"));
    }

    #[test]
    fn the_body_is_well_formed_multipart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a b.txt");
        std::fs::write(&file, b"hello").unwrap();
        let (text, boundary) = body_text(vec![
            UploadPart::Directory("d".into()),
            UploadPart::File("d/a b.txt".into(), file),
        ]);
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n\
--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d%2Fa+b.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n\
--{boundary}--\r\n"
            )
        );
    }
}
