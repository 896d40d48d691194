//! Entry points for the fuzz targets in `fuzz/` (not an API): each takes bytes a client could
//! send and runs them through the same parsing the server does, without a backend or a socket.
//!
//! Owns nothing of its own; it only reaches the crate's private parsers. A panic here is a panic
//! a request could cause.

use cluster_adder::{CarDecoder, Importer};
use cluster_types::{Cid, PeerId, PinOptions, Timestamp, TrackerStatusFilter};
use hyper::Method;

use crate::add_route::{multipart_boundary, part_path, AddParams};
use crate::multipart::{MultipartDecoder, MultipartEvent};
use crate::rest_request::{allocation_filter, path_segments, route, Query, Route};

/// Routes one REST request line (`method` and `target`, path plus query) and parses every
/// parameter its route reads, as the server would before calling the backend.
pub fn rest_request(method: &str, target: &str) {
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let Some(segments) = path_segments(path) else {
        return;
    };
    let Ok(route) = route(&method, &segments) else {
        return;
    };
    let query = Query::parse(query);
    let options = || PinOptions::from_query(query.pairs(), Timestamp::now());
    match route {
        Route::StatusAll => {
            let _ = TrackerStatusFilter::parse(query.get("filter"));
            for cid in query.get("cids").split(',') {
                let _ = cid.trim().parse::<Cid>();
            }
        }
        Route::Pin(cid) | Route::Unpin(cid) => {
            let _ = cid.parse::<Cid>();
            let _ = options();
        }
        Route::PinPath(_) => {
            let _ = options();
        }
        Route::Recover(cid) | Route::Status(cid) | Route::Allocation(cid) => {
            let _ = cid.parse::<Cid>();
        }
        Route::Allocations => {
            let _ = allocation_filter(query.get("filter"));
        }
        Route::PeerRemove(peer) => {
            let _ = peer.parse::<PeerId>();
        }
        Route::Add => {
            if let Ok(pin) = options() {
                let get = |name: &str| Some(query.get(name).to_string());
                let _ = AddParams::parse(&get, pin);
            }
        }
        _ => {}
    }
}

/// Reads one `/add` upload: `query` as the add parameters, `content_type` for the boundary, and
/// `body` delivered in chunks of `chunk` bytes, through the multipart decoder into the UnixFS
/// importer or the CAR decoder. Blocks are dropped: only the parsing and encoding run.
pub fn add_upload(query: &str, content_type: &str, body: &[u8], chunk: usize) {
    let query = Query::parse(Some(query));
    let Ok(pin) = PinOptions::from_query(query.pairs(), Timestamp::now()) else {
        return;
    };
    let get = |name: &str| Some(query.get(name).to_string());
    let Ok(params) = AddParams::parse(&get, pin) else {
        return;
    };
    let Ok(boundary) = multipart_boundary(Some(content_type)) else {
        return;
    };
    let Ok(mut decoder) = MultipartDecoder::new(&boundary) else {
        return;
    };
    let mut events = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        decoder.push(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if decoder.finish().is_err() {
        return;
    }
    if params.car {
        let mut car = CarDecoder::new();
        for event in &events {
            if let MultipartEvent::Data(data) = event {
                if car.push(data).is_err() {
                    return;
                }
            }
        }
        let _ = car.finish();
        return;
    }
    let Ok(mut importer) = Importer::new(params.import) else {
        return;
    };
    let mut events = events.into_iter().peekable();
    while let Some(event) = events.next() {
        let MultipartEvent::Part(headers) = event else {
            continue;
        };
        let path = part_path(headers.filename.as_deref(), headers.name.as_deref());
        if matches!(
            headers.essence().as_deref(),
            Some("application/x-directory" | "multipart/form-data")
        ) {
            if importer.add_directory(&path).is_err() {
                return;
            }
            continue;
        }
        let file = match importer.start_file(&path) {
            Ok(file) => file,
            Err(_) => return,
        };
        let Some(mut file) = file else { continue };
        while let Some(MultipartEvent::Data(data)) = events.peek() {
            let _ = file.write(data);
            events.next();
        }
        if file.finish().is_err() {
            return;
        }
    }
    let _ = importer.finish();
}
