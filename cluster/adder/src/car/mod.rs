//! CAR import (`/add?format=car`): a bounded-memory decoder that verifies every block.

mod car_decoder;
mod car_error;
mod car_reader;
#[cfg(test)]
mod car_test;
mod cbor;

pub use car_decoder::{unixfs_file_size, CarDecoder, CarSummary, CAR_HEADER_SIZE_MAX, CAR_SECTION_SIZE_MAX};
pub use car_error::CarError;
pub use car_reader::CarReader;
