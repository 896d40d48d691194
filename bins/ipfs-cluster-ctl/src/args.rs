//! Flags turned into values and requests: CIDs, filters, metadata, durations, allocations, and
//! the options `pin add` and the query `add` send (as Go's ctl builds them).

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_types::{Cid, PeerId, PinMode, PinOptions, Timestamp, TrackerStatusFilter};

use crate::cli::{AddArgs, PinAddArgs};
use crate::error::CtlError;

pub(crate) fn parse_cid(text: &str) -> Result<Cid, CtlError> {
    text.parse().map_err(|e| CtlError::local("parsing cid", e))
}

/// The `--filter` of `status` as sent: the recognized status names (Go drops unknown ones and
/// refuses a filter that names none).
pub fn status_filter(text: &str) -> Result<String, CtlError> {
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|name| TrackerStatusFilter::parse(name).is_ok_and(|f| !f.is_any()))
        .collect();
    if names.is_empty() && !text.trim().is_empty() {
        return Err(CtlError::local("parsing filter flag", "invalid filter name"));
    }
    Ok(names.join(","))
}

/// `--metadata k=v` values (Go's `parseMetadata`).
pub fn parse_metadata(items: &[String]) -> Result<BTreeMap<String, String>, CtlError> {
    let mut metadata = BTreeMap::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| CtlError::local("parsing metadata", "metadata were not in the format key=value"))?;
        metadata.insert(key.to_string(), value.to_string());
    }
    Ok(metadata)
}

/// A `--wait-timeout` value: a Go duration (`30s`, `2m`) or a bare number of seconds; zero means
/// no timeout.
pub fn parse_wait_timeout(text: Option<&str>) -> Result<Option<Duration>, CtlError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => cluster_types::duration::parse(text).map_err(|e| CtlError::local("parsing wait-timeout", e))?,
    };
    Ok((!duration.is_zero()).then_some(duration))
}

/// `--allocations a,b`: the peer ids; empty when not given. Go refuses the whole list if one
/// does not decode.
pub(crate) fn parse_allocations(list: Option<&str>) -> Result<Vec<PeerId>, CtlError> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .map(|text| {
            text.parse::<PeerId>()
                .map_err(|_| CtlError::local("decoding allocations", "some peer IDs could not be decoded"))
        })
        .collect()
}

/// `--expire-in <duration>` as a time after `now`; zero (no expiry) when not given.
pub(crate) fn expire_at(expire_in: Option<&str>, now: Timestamp) -> Result<Timestamp, CtlError> {
    match expire_in.filter(|t| !t.is_empty()) {
        None => Ok(Timestamp::ZERO),
        Some(text) => {
            let duration = cluster_types::duration::parse(text).map_err(|e| CtlError::local("parsing expire-in", e))?;
            Ok(now.add(duration))
        }
    }
}

/// The pin options `pin add` sends, from its flags (Go's `pin add` action).
pub fn pin_add_options(args: &PinAddArgs, now: Timestamp) -> Result<PinOptions, CtlError> {
    let (mut min, mut max) = (args.replication_min, args.replication_max);
    if args.replication != 0 {
        (min, max) = (args.replication, args.replication);
    }
    // Go always sends `user-allocations`, empty when no peers were given.
    let allocations = parse_allocations(args.allocations.as_deref())?;
    let expire_at = expire_at(args.expire_in.as_deref(), now)?;
    Ok(PinOptions {
        replication_factor_min: min,
        replication_factor_max: max,
        name: args.name.clone(),
        mode: PinMode::from_text(&args.mode),
        user_allocations: Some(allocations),
        expire_at,
        metadata: parse_metadata(&args.metadata)?,
        ..PinOptions::default()
    })
}

/// The `/add` query Go's ctl sends (`AddParams.ToQueryString`, sorted by name), from the flags.
pub fn add_query(args: &AddArgs, now: Timestamp) -> Result<Vec<(String, String)>, CtlError> {
    // Go's ctl: a non-default hash implies CIDv1, and CIDv1 implies raw leaves.
    let cid_version = if args.hash != "sha2-256" { 1 } else { args.cid_version };
    let raw_leaves = args.raw_leaves || cid_version > 0;
    let wrap = args.wrap_with_directory || args.paths.len() > 1;
    let allocations: Vec<String> = parse_allocations(args.allocations.as_deref())?
        .iter()
        .map(ToString::to_string)
        .collect();
    let bool_text = |b: bool| b.to_string();
    let mut query: Vec<(String, String)> = vec![
        ("chunker".into(), args.chunker.clone()),
        ("cid-version".into(), cid_version.to_string()),
        ("format".into(), args.format.clone()),
        ("hash".into(), args.hash.clone()),
        ("hidden".into(), bool_text(args.hidden)),
        ("layout".into(), args.layout.clone()),
        ("local".into(), bool_text(args.local)),
        ("mode".into(), "recursive".into()),
        ("name".into(), args.name.clone()),
        ("no-pin".into(), bool_text(args.no_pin)),
        ("nocopy".into(), bool_text(args.nocopy)),
        ("progress".into(), "false".into()),
        ("raw-leaves".into(), bool_text(raw_leaves)),
        ("recursive".into(), bool_text(args.recursive)),
        ("replication-max".into(), args.replication_max.to_string()),
        ("replication-min".into(), args.replication_min.to_string()),
        ("shard".into(), "false".into()),
        ("shard-size".into(), "104857600".into()),
        ("stream-channels".into(), "true".into()),
        ("user-allocations".into(), allocations.join(",")),
        ("wrap-with-directory".into(), bool_text(wrap)),
    ];
    let expire = expire_at(args.expire_in.as_deref(), now)?;
    if !expire.is_zero() {
        query.push(("expire-at".into(), expire.to_string()));
    }
    for (key, value) in parse_metadata(&args.metadata)? {
        query.push((format!("meta-{key}"), value));
    }
    query.sort();
    Ok(query)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, PinCommand};

    #[test]
    fn pin_add_flags_become_options() {
        let cli = Cli::try_parse_from([
            "ipfs-cluster-ctl",
            "pin",
            "add",
            "-r",
            "3",
            "--rmin",
            "1",
            "--mode",
            "direct",
            "--expire-in",
            "1m",
            "--metadata",
            "a=b=c",
            "--allocs",
            &format!(" {} ", PeerId::from_ed25519_seed([1; 32])),
            "cid",
        ])
        .unwrap();
        let Some(Command::Pin {
            command: PinCommand::Add(args),
        }) = &cli.command
        else {
            panic!("not pin add")
        };
        let now = Timestamp::from_unix(1_000, 0);
        let options = pin_add_options(args, now).unwrap();
        assert_eq!((options.replication_factor_min, options.replication_factor_max), (3, 3));
        assert_eq!(options.mode, PinMode::Direct);
        assert_eq!(options.expire_at, Timestamp::from_unix(1_060, 0));
        assert_eq!(options.metadata.get("a").map(String::as_str), Some("b=c"));
        assert_eq!(options.user_allocations, Some(vec![PeerId::from_ed25519_seed([1; 32])]));
    }

    #[test]
    fn bad_pin_add_flags_are_local_errors() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["ipfs-cluster-ctl", "pin", "add", "cid"];
            argv.extend_from_slice(extra);
            let cli = Cli::try_parse_from(argv).unwrap();
            let Some(Command::Pin {
                command: PinCommand::Add(args),
            }) = cli.command
            else {
                panic!("not pin add")
            };
            pin_add_options(&args, Timestamp::ZERO)
        };
        assert_eq!(
            parse(&["--metadata", "novalue"]).unwrap_err().to_string(),
            "error parsing metadata: metadata were not in the format key=value"
        );
        assert_eq!(
            parse(&["--allocs", "x,y"]).unwrap_err().to_string(),
            "error decoding allocations: some peer IDs could not be decoded"
        );
        assert!(parse(&["--expire-in", "soon"])
            .unwrap_err()
            .to_string()
            .starts_with("error parsing expire-in"));
        assert_eq!(parse(&[]).unwrap().user_allocations, Some(vec![]));
    }

    #[test]
    fn filters_and_timeouts_parse() {
        assert_eq!(status_filter("").unwrap(), "");
        assert_eq!(status_filter("pinned, error,bogus").unwrap(), "pinned,error");
        assert_eq!(
            status_filter("bogus").unwrap_err().to_string(),
            "error parsing filter flag: invalid filter name"
        );
        assert_eq!(parse_wait_timeout(None).unwrap(), None);
        assert_eq!(parse_wait_timeout(Some("0")).unwrap(), None);
        assert_eq!(parse_wait_timeout(Some("90")).unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_wait_timeout(Some("1m30s")).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert!(parse_wait_timeout(Some("later")).is_err());
    }
}
