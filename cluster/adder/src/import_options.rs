//! [`ImportOptions`]: how content is cut and encoded, parsed from the `/add` query with the same
//! names, defaults and implications as IPFS Cluster (`api/add.go`) and Kubo
//! (`core/coreiface/options/unixfs.go`).
//!
//! Owns: parameter parsing and validation. Does not own: the non-import parameters of `/add`
//! (`format`, `local`, `shard`, pin options, ...), which the API layer reads itself.

use cid::Version;

use crate::AddError;

/// Kubo's default fixed chunk size (`size-262144`).
pub const CHUNK_SIZE_DEFAULT: usize = 262_144;
/// The largest chunk Kubo's chunker accepts: the 2 MiB bitswap block limit minus 256 bytes of
/// framing budget (boxo `chunker.ChunkSizeLimit`).
pub const CHUNK_SIZE_MAX: usize = 2 * 1024 * 1024 - 256;
/// Kubo's default maximum links per file node (boxo `helpers.DefaultLinksPerBlock`: 8 KiB / 47).
pub const FILE_LINKS_MAX_DEFAULT: usize = 174;
/// Kubo's default threshold above which a directory is HAMT-sharded (boxo `HAMTShardingSize`,
/// Kubo `Import.UnixFSHAMTDirectorySizeThreshold`): the default of
/// [`ImportOptions::directory_size_max`].
pub const DIRECTORY_SIZE_MAX: u64 = 256 * 1024;

/// Import settings. Build with [`ImportOptions::default`] (Kubo's defaults) or
/// [`ImportOptions::from_params`]; fields set by hand are checked by [`ImportOptions::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Fixed chunk size in bytes (`chunker=size-N`).
    pub chunk_size: usize,
    /// Leaves are raw blocks instead of UnixFS File nodes (`raw-leaves`).
    pub raw_leaves: bool,
    /// CID version of the dag-pb nodes (`cid-version`). Raw leaves are always CIDv1.
    pub cid_version: Version,
    /// Wrap everything added in one directory, named "" in the output (`wrap-with-directory`).
    pub wrap_with_directory: bool,
    /// Keep entries whose name starts with `.` below the top level (`hidden`).
    pub hidden: bool,
    /// Maximum links per file node before the balanced tree grows a level (Kubo
    /// `--max-file-links`; not read from the cluster query).
    pub file_links_max: usize,
    /// The largest estimated size of a basic (single-block) directory; a larger one is
    /// HAMT-sharded. The estimate is Kubo's default one (boxo `SizeEstimationLinks`): the sum
    /// over links of name length plus CID byte length. Kubo's
    /// `Import.UnixFSHAMTDirectorySizeThreshold`; not read from the cluster query.
    pub directory_size_max: u64,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            chunk_size: CHUNK_SIZE_DEFAULT,
            raw_leaves: false,
            cid_version: Version::V0,
            wrap_with_directory: false,
            hidden: false,
            file_links_max: FILE_LINKS_MAX_DEFAULT,
            directory_size_max: DIRECTORY_SIZE_MAX,
        }
    }
}

impl ImportOptions {
    /// Parses the `/add` query parameters, `get(name)` returning the raw value of one.
    ///
    /// Names: `chunker`, `raw-leaves`, `cid-version`, `hash`, `layout`, `wrap-with-directory`,
    /// `hidden`. A missing or empty value means the default, as in cluster's parser. Rules kept
    /// from Kubo and cluster: `cid-version` above 0 implies raw leaves unless `raw-leaves` is
    /// given; only `size-N` chunkers, the `balanced` layout and `sha2-256` are supported, and the
    /// others are refused with an error rather than producing CIDs Kubo would not.
    pub fn from_params(get: impl Fn(&str) -> Option<String>) -> Result<ImportOptions, AddError> {
        let value = |name: &str| get(name).filter(|value| !value.is_empty());
        let mut options = ImportOptions::default();

        if let Some(chunker) = value("chunker") {
            options.chunk_size = parse_chunker(&chunker)?;
        }
        if let Some(hash) = value("hash") {
            // Cluster lower-cases the name before looking it up. Kubo would also switch a
            // non-default hash to CIDv1, but no other hash is supported here.
            if !hash.eq_ignore_ascii_case("sha2-256") {
                return Err(AddError::HashNotSupported { hash });
            }
        }
        match value("layout").as_deref() {
            None | Some("balanced") => {}
            Some("trickle") => return Err(AddError::TrickleNotSupported),
            Some(layout) => {
                return Err(AddError::InvalidLayout {
                    layout: layout.to_string(),
                })
            }
        }
        if let Some(version) = value("cid-version") {
            options.cid_version = parse_cid_version(&version)?;
        }
        // Cluster: `if CidVersion > 0 { RawLeaves = true }`, then an explicit `raw-leaves` wins.
        options.raw_leaves = options.cid_version == Version::V1;
        if let Some(raw_leaves) = value("raw-leaves") {
            options.raw_leaves = parse_bool("raw-leaves", &raw_leaves)?;
        }
        if let Some(wrap) = value("wrap-with-directory") {
            options.wrap_with_directory = parse_bool("wrap-with-directory", &wrap)?;
        }
        if let Some(hidden) = value("hidden") {
            options.hidden = parse_bool("hidden", &hidden)?;
        }
        options.validate()?;
        Ok(options)
    }

    /// Checks the fields' ranges: `1 <= chunk_size <= CHUNK_SIZE_MAX`, `file_links_max >= 2`,
    /// `directory_size_max >= 1`.
    pub fn validate(&self) -> Result<(), AddError> {
        if self.chunk_size == 0 || self.chunk_size > CHUNK_SIZE_MAX {
            return Err(AddError::InvalidOptions {
                reason: format!("chunk_size {} is outside 1..={CHUNK_SIZE_MAX}", self.chunk_size),
            });
        }
        // One link per node would never let the balanced tree reduce to a root.
        if self.file_links_max < 2 {
            return Err(AddError::InvalidOptions {
                reason: format!("file_links_max {} is below 2", self.file_links_max),
            });
        }
        // Kubo reads a threshold of 0 as "never shard", which would let a directory outgrow any
        // block limit; it is not offered.
        if self.directory_size_max == 0 {
            return Err(AddError::InvalidOptions {
                reason: "directory_size_max is 0".to_string(),
            });
        }
        Ok(())
    }
}

/// Parses a chunker string into a chunk size (boxo `chunker.FromString`, `size-N` only).
fn parse_chunker(chunker: &str) -> Result<usize, AddError> {
    if chunker == "default" {
        return Ok(CHUNK_SIZE_DEFAULT);
    }
    let Some(size) = chunker.strip_prefix("size-") else {
        return Err(AddError::ChunkerNotSupported {
            chunker: chunker.to_string(),
        });
    };
    let invalid = |reason: &str| AddError::InvalidChunker {
        chunker: chunker.to_string(),
        reason: reason.to_string(),
    };
    if size.is_empty() || !size.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid("expected size-{size} with a decimal size"));
    }
    let size: usize = size.parse().map_err(|_| invalid("chunker size is too large"))?;
    if size == 0 {
        return Err(invalid("chunker size must be greater than 0"));
    }
    if size > CHUNK_SIZE_MAX {
        return Err(invalid(&format!("chunker size may not exceed {CHUNK_SIZE_MAX}")));
    }
    Ok(size)
}

fn parse_cid_version(value: &str) -> Result<Version, AddError> {
    let version: i64 = value.parse().map_err(|_| AddError::InvalidParameter {
        name: "cid-version".to_string(),
        value: value.to_string(),
    })?;
    match version {
        0 => Ok(Version::V0),
        1 => Ok(Version::V1),
        _ => Err(AddError::CidVersionNotSupported { version }),
    }
}

/// Go's `strconv.ParseBool`, which cluster uses for every boolean parameter.
fn parse_bool(name: &str, value: &str) -> Result<bool, AddError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(AddError::InvalidParameter {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<ImportOptions, AddError> {
        ImportOptions::from_params(|name| {
            query
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn defaults_are_kubo_defaults() {
        let options = parse(&[]).unwrap();
        assert_eq!(options, ImportOptions::default());
        assert_eq!(options.chunk_size, 262_144);
        assert!(!options.raw_leaves);
        assert_eq!(options.cid_version, Version::V0);
        assert_eq!(options.file_links_max, 174);
        assert_eq!(options.directory_size_max, 262_144);
        // Empty values are "unset", as cluster's ctl always sends every parameter.
        let empty = parse(&[("chunker", ""), ("layout", ""), ("hash", ""), ("raw-leaves", "")]).unwrap();
        assert_eq!(empty, ImportOptions::default());
    }

    #[test]
    fn cid_version_one_implies_raw_leaves_unless_explicit() {
        let v1 = parse(&[("cid-version", "1")]).unwrap();
        assert_eq!(v1.cid_version, Version::V1);
        assert!(v1.raw_leaves);
        let v1_no_raw = parse(&[("cid-version", "1"), ("raw-leaves", "false")]).unwrap();
        assert!(!v1_no_raw.raw_leaves);
        let v0_raw = parse(&[("cid-version", "0"), ("raw-leaves", "true")]).unwrap();
        assert_eq!(v0_raw.cid_version, Version::V0);
        assert!(v0_raw.raw_leaves);
    }

    #[test]
    fn chunker_parsing() {
        assert_eq!(parse(&[("chunker", "size-1024")]).unwrap().chunk_size, 1024);
        assert_eq!(parse(&[("chunker", "default")]).unwrap().chunk_size, CHUNK_SIZE_DEFAULT);
        assert_eq!(
            parse(&[("chunker", &format!("size-{CHUNK_SIZE_MAX}"))])
                .unwrap()
                .chunk_size,
            CHUNK_SIZE_MAX
        );
        for chunker in ["rabin", "rabin-36-512-1024", "buzhash", "fixed"] {
            let error = parse(&[("chunker", chunker)]).unwrap_err();
            assert_eq!(
                error,
                AddError::ChunkerNotSupported {
                    chunker: chunker.to_string()
                }
            );
            assert_eq!(
                error.to_string(),
                format!("chunker {chunker} not supported, use size-N")
            );
        }
        for chunker in [
            "size-0",
            "size-",
            "size-abc",
            "size--1",
            "size-2096897",
            "size-99999999999999999999999",
        ] {
            assert!(
                matches!(parse(&[("chunker", chunker)]), Err(AddError::InvalidChunker { .. })),
                "{chunker}"
            );
        }
    }

    #[test]
    fn hash_layout_and_version_errors() {
        assert!(parse(&[("hash", "sha2-256")]).is_ok());
        assert!(parse(&[("hash", "SHA2-256")]).is_ok());
        let error = parse(&[("hash", "blake2b-256")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hash function blake2b-256 not supported, only sha2-256"
        );
        assert!(parse(&[("layout", "balanced")]).is_ok());
        let error = parse(&[("layout", "trickle")]).unwrap_err();
        assert_eq!(error.to_string(), "trickle layout not supported yet");
        assert!(matches!(
            parse(&[("layout", "flat")]),
            Err(AddError::InvalidLayout { .. })
        ));
        assert!(matches!(
            parse(&[("cid-version", "2")]),
            Err(AddError::CidVersionNotSupported { version: 2 })
        ));
        assert!(matches!(
            parse(&[("cid-version", "x")]),
            Err(AddError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn booleans_parse_like_go() {
        let options = parse(&[("wrap-with-directory", "T"), ("hidden", "1")]).unwrap();
        assert!(options.wrap_with_directory);
        assert!(options.hidden);
        let error = parse(&[("hidden", "yes")]).unwrap_err();
        assert_eq!(error.to_string(), "parameter hidden invalid");
    }

    #[test]
    fn validate_rejects_out_of_range_fields() {
        let mut options = ImportOptions {
            chunk_size: 0,
            ..ImportOptions::default()
        };
        assert!(options.validate().is_err());
        options.chunk_size = 10;
        options.file_links_max = 1;
        assert!(options.validate().is_err());
        options.file_links_max = 2;
        assert!(options.validate().is_ok());
        options.directory_size_max = 0;
        assert!(options.validate().is_err());
        options.directory_size_max = 1;
        assert!(options.validate().is_ok());
    }
}
