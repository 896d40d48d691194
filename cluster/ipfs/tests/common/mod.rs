//! Test helpers: a scripted raw-HTTP stub daemon (for reply shapes and timings the fake never
//! produces: js-ipfs JSON, slow or stalled progress, trailers, garbage), a one-shot raw HTTP
//! client, and a free loopback port with nothing listening.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_rt::tokio::io::{AsyncReadExt, AsyncWriteExt};
use cluster_rt::tokio::net::{TcpListener, TcpStream};
use cluster_rt::tokio::task::JoinHandle;

/// One step of a scripted reply body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send this text as one chunk.
    Send(String),
    /// Pause.
    Sleep(Duration),
    /// Send these trailers and end the body.
    Trailer(&'static str, String),
}

/// A scripted reply: status and body steps. The body is always chunked.
pub type Script = (u16, Vec<Step>);

/// A stub daemon on 127.0.0.1 answering every request from `route(path_and_query)`.
pub struct Stub {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub async fn start(route: impl Fn(&str) -> Script + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let route = Arc::new(route);
        let task = cluster_rt::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let route = route.clone();
                cluster_rt::spawn(async move {
                    let _ = serve(stream, &*route).await;
                });
            }
        });
        Stub { address, task }
    }
}

async fn serve(mut stream: TcpStream, route: &(dyn Fn(&str) -> Script + Send + Sync)) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, steps) = route(&target);
    let mut response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Stream-Error\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    for step in steps {
        match step {
            Step::Send(text) => {
                stream
                    .write_all(format!("{:x}\r\n{text}\r\n", text.len()).as_bytes())
                    .await?;
                stream.flush().await?;
            }
            Step::Sleep(duration) => cluster_rt::sleep(duration).await,
            Step::Trailer(name, value) => {
                response = format!("0\r\n{name}: {value}\r\n\r\n");
                stream.write_all(response.as_bytes()).await?;
                return stream.shutdown().await;
            }
        }
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.shutdown().await
}

/// A whole JSON reply with status 200.
pub fn ok(text: &str) -> Script {
    (200, vec![Step::Send(text.to_string())])
}

/// Kubo's error reply.
pub fn error(status: u16, message: &str) -> Script {
    (
        status,
        vec![Step::Send(
            serde_json::json!({"Message": message, "Code": 0, "Type": "error"}).to_string(),
        )],
    )
}

/// A loopback address where nothing listens (bound, then released).
pub async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address
}

/// Sends one raw HTTP/1.1 request and returns (status, body). The server must close after it.
pub async fn raw_request(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reply = Vec::new();
    cluster_rt::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).to_string();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}
