//! [`CarReader`]: the [`CarDecoder`] over a blocking `std::io::Read`, as an iterator of blocks.
//! For async bodies, push the chunks into a [`CarDecoder`] directly.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};

use crate::{Block, CarDecoder, CarError, CarSummary};

/// Bytes asked of the reader per read.
const READ_SIZE: usize = 64 * 1024;

/// Reads a CAR stream block by block, keeping at most one read's worth of blocks queued.
///
/// The iterator ends with `None` after the last block (then [`CarReader::summary`] is set), or
/// after yielding one error.
#[derive(Debug)]
pub struct CarReader<R> {
    reader: R,
    /// `None` once the stream ended or failed.
    decoder: Option<CarDecoder>,
    queue: VecDeque<Block>,
    summary: Option<CarSummary>,
    read_buffer: Vec<u8>,
}

impl<R: Read> CarReader<R> {
    /// A reader with the default limits.
    pub fn new(reader: R) -> CarReader<R> {
        CarReader::with_decoder(reader, CarDecoder::new())
    }

    /// A reader using a decoder configured by the caller (limits).
    pub fn with_decoder(reader: R, decoder: CarDecoder) -> CarReader<R> {
        CarReader {
            reader,
            decoder: Some(decoder),
            queue: VecDeque::new(),
            summary: None,
            read_buffer: vec![0; READ_SIZE],
        }
    }

    /// The roots, once the header has been read.
    pub fn roots(&self) -> Option<&[cid::Cid]> {
        match (&self.decoder, &self.summary) {
            (_, Some(summary)) => Some(&summary.roots),
            (Some(decoder), None) => decoder.roots(),
            (None, None) => None,
        }
    }

    /// What the stream held, once the iterator has returned `None` without an error.
    pub fn summary(&self) -> Option<&CarSummary> {
        self.summary.as_ref()
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<Block, CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(block) = self.queue.pop_front() {
                return Some(Ok(block));
            }
            let decoder = self.decoder.as_mut()?;
            let result = match self.reader.read(&mut self.read_buffer) {
                Ok(0) => {
                    let decoder = self.decoder.take().expect("checked above");
                    return match decoder.finish() {
                        Ok(summary) => {
                            self.summary = Some(summary);
                            None
                        }
                        Err(error) => Some(Err(error)),
                    };
                }
                Ok(count) => decoder.push(&self.read_buffer[..count]),
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => Err(CarError::Io(error)),
            };
            match result {
                Ok(blocks) => self.queue.extend(blocks),
                Err(error) => {
                    self.decoder = None;
                    return Some(Err(error));
                }
            }
        }
    }
}
