//! Frames on a request-response stream: a 4-byte big-endian length, then that many bytes
//! (cluster-rpc's wire encoding). Lengths over [`MAX_FRAME`] are refused before allocating.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cluster_rpc::wire::{MAX_FRAME, PROTOCOL};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// Bytes in, bytes out: decoding happens off the swarm task. Counts the bytes of every frame
/// (length prefix included) for `/health/bandwidth`.
#[derive(Clone, Default)]
pub struct FrameCodec {
    traffic: Arc<TrafficCounter>,
}

/// Bytes received and sent on the RPC protocol since the start.
#[derive(Debug, Default)]
pub struct TrafficCounter {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl TrafficCounter {
    /// Counts `bytes` received.
    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `bytes` sent.
    pub(crate) fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `(in, out)` so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
}

impl FrameCodec {
    /// A codec counting into `traffic`.
    pub fn counting(traffic: Arc<TrafficCounter>) -> FrameCodec {
        FrameCodec { traffic }
    }

    fn received(&self, frame: &[u8]) {
        self.traffic.received(4 + frame.len());
    }

    fn sent(&self, length: usize) {
        self.traffic.sent(4 + length);
    }
}

/// The protocol this codec speaks.
pub fn protocol() -> StreamProtocol {
    StreamProtocol::new(PROTOCOL)
}

/// One frame from `io`: its length, checked against [`MAX_FRAME`] before allocating, then its
/// bytes.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes is over the {MAX_FRAME} byte limit"),
        ));
    }
    let mut bytes = vec![0u8; length];
    io.read_exact(&mut bytes).await?;
    Ok(bytes)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: Vec<u8>) -> io::Result<()> {
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let frame = read_frame(io).await?;
        self.received(&frame);
        Ok(frame)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let frame = read_frame(io).await?;
        self.received(&frame);
        Ok(frame)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        let length = request.len();
        write_frame(io, request).await?;
        self.sent(length);
        Ok(())
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()> {
        let length = response.len();
        write_frame(io, response).await?;
        self.sent(length);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused() {
        futures::executor::block_on(async {
            let mut buffer = Vec::new();
            write_frame(&mut futures::io::Cursor::new(&mut buffer), b"hello".to_vec())
                .await
                .unwrap();
            assert_eq!(&buffer[..4], &5u32.to_be_bytes());
            let back = read_frame(&mut futures::io::Cursor::new(buffer)).await.unwrap();
            assert_eq!(back, b"hello");

            let mut huge = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
            huge.extend_from_slice(b"xx");
            let error = read_frame(&mut futures::io::Cursor::new(huge)).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);

            let truncated = [0u8, 0, 0, 9, 1, 2];
            assert!(read_frame(&mut futures::io::Cursor::new(truncated.to_vec()))
                .await
                .is_err());
        });
    }
}
