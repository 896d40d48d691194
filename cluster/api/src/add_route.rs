//! `POST /add` (reference §1.7): a multipart upload turned into blocks on the chosen members'
//! daemons, then one cluster pin of the root.
//!
//! Owns: the add parameters, reading the multipart body part by part ([`MultipartDecoder`]; a
//! part is never held whole), feeding the UnixFS importer or the CAR decoder of `cluster-adder`,
//! sending blocks in bounded batches through [`RestBackend::add_blocks`] as they are made, and
//! the output lines. The body is read only as fast as the daemons take the blocks: the next
//! chunk is read from the connection once the previous one's blocks are stored, so a client
//! faster than the daemons is slowed by TCP, and memory stays bounded whatever the upload's size.

use std::sync::Arc;

use bytes::Bytes;
use cluster_adder::{unixfs_file_size, Block, CarDecoder, ImportOptions, Importer};
use cluster_types::{AddedOutput, Cid, ClusterError, PeerId, PinOptions};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::multipart::{MultipartDecoder, MultipartEvent};
use crate::{RestBackend, ResultStream};

/// Blocks are sent to the daemons in batches of about this many bytes...
const BATCH_BYTES: usize = 1 << 20;
/// ...or of this many blocks (small files), whichever comes first.
const BATCH_BLOCKS: usize = 4096;

/// With `progress=true`, a progress line every this many bytes of a file.
const PROGRESS_EVERY: u64 = 256 * 1024;

/// The add parameters that are not about encoding (those are [`ImportOptions`]).
#[derive(Debug, Clone)]
pub(crate) struct AddParams {
    pub import: ImportOptions,
    pub car: bool,
    pub local: bool,
    pub no_pin: bool,
    pub stream_channels: bool,
    pub progress: bool,
    pub pin: PinOptions,
}

/// Go's `strconv.ParseBool`; empty or absent is `default`.
fn parse_bool(name: &str, value: Option<&str>, default: bool) -> Result<bool, String> {
    match value.unwrap_or("") {
        "" => Ok(default),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("parameter {name} invalid: {other:?} is not a boolean")),
    }
}

impl AddParams {
    /// Parses the query; the message of an error is the 400 body.
    pub(crate) fn parse(get: &dyn Fn(&str) -> Option<String>, pin: PinOptions) -> Result<AddParams, String> {
        let mut import = ImportOptions::from_params(get).map_err(|e| e.to_string())?;
        // Go's server ignores `hidden` (ipfs-cluster-ctl leaves dotfiles out before sending):
        // whatever a client uploads is added.
        import.hidden = true;
        let car = match get("format").as_deref().unwrap_or("") {
            "" | "unixfs" => false,
            "car" => true,
            _ => return Err("format parameter is invalid".into()),
        };
        if parse_bool("shard", get("shard").as_deref(), false)? {
            return Err("sharding (shard=true) is not supported yet; add without it".into());
        }
        if parse_bool("nocopy", get("nocopy").as_deref(), false)? {
            return Err("nocopy (filestore) adds are not supported".into());
        }
        Ok(AddParams {
            import,
            car,
            local: parse_bool("local", get("local").as_deref(), false)?,
            no_pin: parse_bool("no-pin", get("no-pin").as_deref(), false)?,
            stream_channels: parse_bool("stream-channels", get("stream-channels").as_deref(), true)?,
            progress: parse_bool("progress", get("progress").as_deref(), false)?,
            pin,
        })
    }
}

/// The boundary of a `multipart/form-data` (or `multipart/mixed`) body, else the 400 message.
pub(crate) fn multipart_boundary(content_type: Option<&str>) -> Result<String, String> {
    let refused = || "request Content-Type isn't multipart/form-data".to_string();
    let content_type = content_type.ok_or_else(refused)?;
    let (essence, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let essence = essence.trim().to_ascii_lowercase();
    if essence != "multipart/form-data" && essence != "multipart/mixed" {
        return Err(refused());
    }
    params
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(refused)
}

/// The path of a part, as Go derives it: the `filename` query-unescaped, then cleaned and made
/// relative. Parts without a filename take their field name.
pub(crate) fn part_path(filename: Option<&str>, field_name: Option<&str>) -> String {
    let raw = filename.filter(|f| !f.is_empty()).or(field_name).unwrap_or("file");
    let unescaped: String = url::form_urlencoded::parse(format!("x={}", raw.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| raw.to_string());
    let mut parts: Vec<&str> = Vec::new();
    for segment in unescaped.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        "file".to_string()
    } else {
        parts.join("/")
    }
}

/// Runs an add: reads the upload, stores blocks, pins the root. Output lines (or the error that
/// ended it) go to the returned stream as they are produced.
pub(crate) fn run_add<S>(
    backend: Arc<dyn RestBackend>,
    params: AddParams,
    destinations: Vec<PeerId>,
    body: S,
    boundary: String,
) -> ResultStream<AddedOutput>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    cluster_rt::spawn(async move {
        let client = tx.clone();
        let add = async move {
            let mut adder = Adder {
                backend,
                destinations,
                batch: Vec::new(),
                batch_bytes: 0,
                waiting: Vec::new(),
                tx: tx.clone(),
            };
            let result = match MultipartDecoder::new(&boundary) {
                Ok(decoder) => {
                    let mut upload = Upload {
                        body: Box::pin(body),
                        decoder,
                    };
                    adder.add(params, &mut upload).await
                }
                Err(e) => Err(bad_upload(e)),
            };
            if let Err(error) = result {
                let _ = tx.send(Err(error)).await;
            }
        };
        // The output's receiver goes with the response: once the client is gone, the add
        // stops wherever it is (reading the upload, storing a batch, pinning), and the upload,
        // its decoder and the blocks not yet stored are dropped with it.
        tokio::select! {
            () = add => {}
            () = client.closed() => tracing::info!("an add stopped: its client went away"),
        }
    });
    rx
}

/// The upload being read: the request body and the multipart decoder it is pushed through, one
/// chunk at a time, only when the decoder has handed out everything of the previous one.
struct Upload {
    body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    decoder: MultipartDecoder,
}

impl Upload {
    /// The next multipart event, reading more of the body when the decoder needs it.
    async fn next(&mut self) -> Result<MultipartEvent, ClusterError> {
        loop {
            if let Some(event) = self.decoder.next_event().map_err(bad_upload)? {
                return Ok(event);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.decoder.push(&chunk),
                Some(Err(e)) => return Err(bad_upload(format!("reading the upload: {e}"))),
                None => {
                    self.decoder.finish().map_err(bad_upload)?;
                    return Ok(MultipartEvent::End);
                }
            }
        }
    }

    /// Reads past the current part's data; returns what follows it.
    async fn skip_data(&mut self) -> Result<MultipartEvent, ClusterError> {
        loop {
            match self.next().await? {
                MultipartEvent::Data(_) => {}
                other => return Ok(other),
            }
        }
    }
}

struct Adder {
    backend: Arc<dyn RestBackend>,
    destinations: Vec<PeerId>,
    batch: Vec<(Cid, Bytes)>,
    batch_bytes: usize,
    /// Entry lines whose last blocks are in `batch`: they go out once it is stored, so a line
    /// never names content the daemons do not have.
    waiting: Vec<AddedOutput>,
    tx: mpsc::Sender<Result<AddedOutput, ClusterError>>,
}

fn bad_upload(message: impl std::fmt::Display) -> ClusterError {
    ClusterError::InvalidArgument(message.to_string())
}

impl Adder {
    async fn emit(&self, line: AddedOutput) -> Result<(), ClusterError> {
        self.tx.send(Ok(line)).await.map_err(|_| ClusterError::ClientGone)
    }

    fn line(&self, name: String, cid: Cid, size: u64, bytes: u64) -> AddedOutput {
        AddedOutput {
            name,
            cid: Some(cid),
            bytes,
            size,
            allocations: self.destinations.clone(),
        }
    }

    async fn push_blocks(&mut self, blocks: Vec<Block>) -> Result<(), ClusterError> {
        for block in blocks {
            // Identity-hash blocks hold their data in the CID: nothing to store.
            if block.cid.hash().code() == cluster_adder::MULTIHASH_IDENTITY {
                continue;
            }
            self.batch_bytes += block.data.len();
            self.batch.push((Cid(block.cid), Bytes::from(block.data)));
        }
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_BLOCKS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends an entry's line once every block pushed so far is stored.
    async fn emit_stored(&mut self, line: AddedOutput) -> Result<(), ClusterError> {
        if self.batch.is_empty() {
            return self.emit(line).await;
        }
        self.waiting.push(line);
        Ok(())
    }

    /// Stores the batch on the destinations, then sends the lines that waited for it.
    async fn flush(&mut self) -> Result<(), ClusterError> {
        self.store_batch().await?;
        self.emit_waiting().await
    }

    /// Stores the batch on the destinations.
    async fn store_batch(&mut self) -> Result<(), ClusterError> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.batch_bytes = 0;
            self.backend.add_blocks(&self.destinations, batch).await?;
        }
        Ok(())
    }

    /// Sends the lines that waited for their blocks.
    async fn emit_waiting(&mut self) -> Result<(), ClusterError> {
        for line in std::mem::take(&mut self.waiting) {
            self.emit(line).await?;
        }
        Ok(())
    }

    async fn add(&mut self, params: AddParams, upload: &mut Upload) -> Result<(), ClusterError> {
        let root = if params.car {
            self.add_car(upload).await?
        } else {
            self.add_unixfs(&params, upload).await?
        };
        self.store_batch().await?;
        if !params.no_pin {
            // As Go: the pin is named only by the `name` parameter, never after the file.
            self.backend
                .add_pin(root, params.pin.clone(), self.destinations.clone())
                .await?;
        }
        // The last lines, the root's among them, go out once it is pinned: a client that sees
        // the root's line sees an add that succeeded.
        self.emit_waiting().await
    }

    async fn add_unixfs(&mut self, params: &AddParams, upload: &mut Upload) -> Result<Cid, ClusterError> {
        let mut importer = Importer::new(params.import.clone()).map_err(bad_upload)?;
        let mut sent = 0usize;
        let mut event = upload.next().await?;
        loop {
            let headers = match event {
                MultipartEvent::End => break,
                // Data only follows a part's headers; nothing else can come first.
                MultipartEvent::Data(_) => {
                    event = upload.next().await?;
                    continue;
                }
                MultipartEvent::Part(headers) => headers,
            };
            let path = part_path(headers.filename.as_deref(), headers.name.as_deref());
            let directory = matches!(
                headers.essence().as_deref(),
                Some("application/x-directory" | "multipart/form-data")
            );
            if directory {
                importer.add_directory(&path).map_err(bad_upload)?;
                event = upload.skip_data().await?;
                continue;
            }
            let Some(mut file) = importer.start_file(&path).map_err(bad_upload)? else {
                // Hidden and `hidden` is off: read and drop.
                event = upload.skip_data().await?;
                continue;
            };
            let mut next_progress = PROGRESS_EVERY;
            event = loop {
                let chunk = match upload.next().await? {
                    MultipartEvent::Data(chunk) => chunk,
                    other => break other,
                };
                let blocks = file.write(&chunk);
                self.push_blocks(blocks).await?;
                if params.progress && file.bytes() >= next_progress {
                    next_progress = file.bytes() + PROGRESS_EVERY;
                    self.emit(AddedOutput {
                        name: path.clone(),
                        cid: None,
                        bytes: file.bytes(),
                        size: 0,
                        allocations: Vec::new(),
                    })
                    .await?;
                }
            };
            let added = file.finish().map_err(bad_upload)?;
            self.push_blocks(added.blocks).await?;
            let entry = added.entry;
            self.emit_stored(self.line(entry.name, Cid(entry.cid), entry.size, 0))
                .await?;
            sent += 1;
        }
        let imported = importer.finish().map_err(bad_upload)?;
        self.push_blocks(imported.blocks).await?;
        for entry in imported.entries.into_iter().skip(sent) {
            self.emit_stored(self.line(entry.name, Cid(entry.cid), entry.size, 0))
                .await?;
        }
        Ok(Cid(imported.root))
    }

    /// `format=car`: the first part is a CAR; its blocks are stored as they are verified and its
    /// first root is pinned. One output line: the root, the blocks' total bytes and, when the
    /// root is a UnixFS file, its size.
    async fn add_car(&mut self, upload: &mut Upload) -> Result<Cid, ClusterError> {
        let headers = loop {
            match upload.next().await? {
                MultipartEvent::Part(headers) => break headers,
                MultipartEvent::Data(_) => {}
                MultipartEvent::End => return Err(bad_upload("no CAR file in the upload")),
            }
        };
        let name = part_path(headers.filename.as_deref(), headers.name.as_deref());
        let mut decoder = CarDecoder::new();
        let mut root_size = 0u64;
        let mut roots: Option<Vec<cid::Cid>> = None;
        while let MultipartEvent::Data(chunk) = upload.next().await? {
            let blocks = decoder.push(&chunk).map_err(bad_upload)?;
            for block in &blocks {
                let hash = block.cid.hash();
                let storable_hash = hash.code() == cluster_adder::MULTIHASH_IDENTITY
                    || (hash.code() == cluster_adder::MULTIHASH_SHA2_256 && hash.size() == 32);
                let storable_codec = matches!(block.cid.codec(), 0x55 | 0x70 | 0x71);
                if !storable_hash || !storable_codec {
                    return Err(bad_upload(format!(
                        "block {} cannot be stored: only raw, dag-pb and dag-cbor blocks with full sha2-256 hashes are supported",
                        block.cid
                    )));
                }
            }
            if roots.is_none() {
                roots = decoder.roots().map(<[cid::Cid]>::to_vec);
            }
            if let Some(root) = roots.as_ref().and_then(|r| r.first()) {
                if let Some(block) = blocks.iter().find(|b| b.cid == *root) {
                    root_size = unixfs_file_size(block).unwrap_or(0);
                }
            }
            self.push_blocks(blocks).await?;
        }
        let summary = decoder.finish().map_err(bad_upload)?;
        // As Go: exactly one root.
        let [root] = summary.roots.as_slice() else {
            return Err(bad_upload(format!(
                "a CAR must have exactly one root; this one has {}",
                summary.roots.len()
            )));
        };
        let root = *root;
        self.emit_stored(self.line(name, Cid(root), root_size, summary.block_bytes))
            .await?;
        Ok(Cid(root))
    }
}

/// Drains the rest of a stream of add output into one list (`stream-channels=false`).
pub(crate) async fn collect_all(mut lines: ResultStream<AddedOutput>) -> Result<Vec<AddedOutput>, ClusterError> {
    let mut all = Vec::new();
    while let Some(line) = lines.recv().await {
        all.push(line?);
    }
    Ok(all)
}

/// The request body as a stream of data chunks (trailers skipped).
pub(crate) fn body_stream(body: hyper::body::Incoming) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    http_body_util::BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(std::io::Error::other(e))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_paths_are_cleaned_like_go() {
        assert_eq!(part_path(Some("hello.txt"), Some("file")), "hello.txt");
        assert_eq!(part_path(Some("dir%2Fa.txt"), None), "dir/a.txt");
        assert_eq!(part_path(Some("/abs/../x/./y"), None), "x/y");
        assert_eq!(part_path(Some("a+b"), None), "a b");
        assert_eq!(part_path(Some("undefined"), Some("file")), "undefined");
        assert_eq!(part_path(None, Some("file")), "file");
        assert_eq!(part_path(Some(""), None), "file");
        assert_eq!(part_path(Some("../.."), None), "file");
    }

    #[test]
    fn boundaries_of_multipart_types_only() {
        assert_eq!(
            multipart_boundary(Some("multipart/form-data; boundary=abc")).unwrap(),
            "abc"
        );
        assert_eq!(
            multipart_boundary(Some("Multipart/Mixed; boundary=\"q r\"")).unwrap(),
            "q r"
        );
        assert!(multipart_boundary(Some("application/json")).is_err());
        assert!(multipart_boundary(Some("multipart/form-data")).is_err());
        assert!(multipart_boundary(None).is_err());
    }

    #[test]
    fn params_follow_go_defaults_and_refusals() {
        let none = |_: &str| None::<String>;
        let params = AddParams::parse(&none, PinOptions::default()).unwrap();
        assert!(params.stream_channels && !params.car && !params.local && !params.no_pin);
        let get = |k: &str| match k {
            "format" => Some("tar".to_string()),
            _ => None,
        };
        assert_eq!(
            AddParams::parse(&get, PinOptions::default()).unwrap_err(),
            "format parameter is invalid"
        );
        let get = |k: &str| (k == "shard").then(|| "true".to_string());
        assert!(AddParams::parse(&get, PinOptions::default()).is_err());
        let get = |k: &str| (k == "local").then(|| "maybe".to_string());
        assert!(AddParams::parse(&get, PinOptions::default())
            .unwrap_err()
            .contains("local"));
    }
}

/// An add whose client goes away.
#[cfg(test)]
mod client_gone_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use cluster_types::{GlobalPinInfo, Id, Pin, TrackerStatusFilter};

    const BATCH_STORE_TIME: Duration = Duration::from_millis(300);

    /// Stores each batch slowly and counts what it was asked; every other call is unused here.
    #[derive(Default)]
    struct SlowStore {
        batches: AtomicUsize,
        pins: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl RestBackend for SlowStore {
        async fn add_blocks(&self, _: &[PeerId], _: Vec<(Cid, Bytes)>) -> Result<(), ClusterError> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            cluster_rt::sleep(BATCH_STORE_TIME).await;
            Ok(())
        }
        async fn add_pin(&self, root: Cid, options: PinOptions, _: Vec<PeerId>) -> Result<Pin, ClusterError> {
            self.pins.fetch_add(1, Ordering::SeqCst);
            Ok(Pin::new(root, options))
        }
        async fn id(&self) -> Id {
            unreachable!("an add asks no id")
        }
        async fn peers(&self) -> ResultStream<Id> {
            unreachable!("an add lists no peers")
        }
        async fn pin(&self, _: Cid, _: PinOptions) -> Result<Pin, ClusterError> {
            unreachable!("an add pins through add_pin")
        }
        async fn pin_path(&self, _: String, _: PinOptions) -> Result<Pin, ClusterError> {
            unreachable!("an add pins through add_pin")
        }
        async fn unpin(&self, _: Cid) -> Result<Pin, ClusterError> {
            unreachable!("an add unpins nothing")
        }
        async fn unpin_path(&self, _: String) -> Result<Pin, ClusterError> {
            unreachable!("an add unpins nothing")
        }
        async fn allocations(&self, _: u32) -> crate::PageStream<Pin> {
            unreachable!("an add lists nothing")
        }
        async fn allocation(&self, _: Cid) -> Result<Pin, ClusterError> {
            unreachable!("an add reads no allocation")
        }
        async fn status(&self, _: Cid, _: bool) -> Result<GlobalPinInfo, ClusterError> {
            unreachable!("an add reads no status")
        }
        async fn status_all(
            &self,
            _: TrackerStatusFilter,
            _: Vec<Cid>,
            _: bool,
        ) -> ResultStream<cluster_types::LineItem<GlobalPinInfo>> {
            unreachable!("an add reads no status")
        }
        async fn recover(&self, _: Cid, _: bool) -> Result<GlobalPinInfo, ClusterError> {
            unreachable!("an add recovers nothing")
        }
        async fn recover_all(&self, _: bool) -> ResultStream<GlobalPinInfo> {
            unreachable!("an add recovers nothing")
        }
    }

    /// An upload of one file of `size` bytes, all of it available at once (the client sent it
    /// and left).
    fn upload_of(size: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".to_vec();
        body.extend((0..size).map(|i| (i % 251) as u8));
        body.extend_from_slice(b"\r\n--B--\r\n");
        futures::stream::iter(
            body.chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        )
    }

    /// Reported: abandoned adds went on storing blocks for many minutes after their client left.
    #[tokio::test]
    async fn an_add_stops_when_its_client_goes_away() {
        let store = Arc::new(SlowStore::default());
        let params = AddParams::parse(&|_: &str| None, PinOptions::default()).expect("default add parameters");
        // 8 MiB: eight batches of 1 MiB, each slow to store.
        let lines = run_add(
            store.clone(),
            params.clone(),
            Vec::new(),
            upload_of(8 << 20),
            "B".into(),
        );
        while store.batches.load(Ordering::SeqCst) == 0 {
            cluster_rt::sleep(Duration::from_millis(10)).await;
        }
        drop(lines);
        // Long enough for the seven batches left, and the pin, had the add gone on.
        cluster_rt::sleep(BATCH_STORE_TIME * 10).await;
        assert_eq!(
            store.batches.load(Ordering::SeqCst),
            1,
            "batches stored after the client left"
        );
        assert_eq!(store.pins.load(Ordering::SeqCst), 0, "the abandoned add was pinned");

        // The same add with its client staying to the end stores every batch and pins.
        let store = Arc::new(SlowStore::default());
        let mut lines = run_add(store.clone(), params, Vec::new(), upload_of(8 << 20), "B".into());
        while let Some(line) = lines.recv().await {
            line.expect("the add succeeds");
        }
        assert!(store.batches.load(Ordering::SeqCst) >= 8);
        assert_eq!(store.pins.load(Ordering::SeqCst), 1);
    }
}
