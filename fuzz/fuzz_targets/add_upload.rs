//! A `/add` upload: the query's add parameters, the Content-Type's boundary, and the multipart
//! body read in chunks into the UnixFS importer or the CAR decoder.
//!
//! Input: one byte of chunk size, the query up to a line break, the Content-Type up to a line
//! break, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut lines = rest.splitn(3, |b| *b == b'\n');
    let (Some(query), Some(content_type), Some(body)) = (lines.next(), lines.next(), lines.next()) else {
        return;
    };
    let (Ok(query), Ok(content_type)) = (std::str::from_utf8(query), std::str::from_utf8(content_type)) else {
        return;
    };
    cluster_api::fuzz_entry::add_upload(query, content_type, body, usize::from(chunk) + 1);
});
