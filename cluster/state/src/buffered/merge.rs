//! Listing the buffer over the store: runs of (key, value) in the store's order merged into
//! one, a newer layer's value over an older one's.

use std::iter::Peekable;

use cluster_types::{Cid, Pin};

use crate::StateError;

/// Two runs of (key, value) in key order as one, `upper`'s value where both hold a key.
pub(super) struct Layered<'a, T, U: Iterator<Item = (&'a [u8], T)>, L: Iterator<Item = (&'a [u8], T)>> {
    upper: Peekable<U>,
    lower: Peekable<L>,
}

impl<'a, T, U, L> Iterator for Layered<'a, T, U, L>
where
    U: Iterator<Item = (&'a [u8], T)>,
    L: Iterator<Item = (&'a [u8], T)>,
{
    type Item = (&'a [u8], T);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.upper.peek(), self.lower.peek()) {
            (Some((upper, _)), Some((lower, _))) if lower < upper => self.lower.next(),
            (Some((upper, _)), Some((lower, _))) if lower == upper => {
                self.lower.next();
                self.upper.next()
            }
            (Some(_), _) => self.upper.next(),
            (None, _) => self.lower.next(),
        }
    }
}

pub(super) fn layered<'a, T, U, L>(upper: U, lower: L) -> Layered<'a, T, U, L>
where
    U: Iterator<Item = (&'a [u8], T)>,
    L: Iterator<Item = (&'a [u8], T)>,
{
    Layered {
        upper: upper.peekable(),
        lower: lower.peekable(),
    }
}

/// The first `limit` items after `after` of the store's pages (`page`) with the `buffered`
/// items after `after` (in the store's order) over them: a buffered item replaces or (`None`)
/// hides the store's.
pub(super) fn merged_page<'a, T>(
    buffered: impl Iterator<Item = (&'a [u8], Option<T>)>,
    after: Option<&Cid>,
    limit: usize,
    page: impl Fn(Option<&Cid>, usize) -> Result<Vec<(Cid, T)>, StateError>,
) -> Result<Vec<T>, StateError> {
    let mut buffered = buffered.peekable();
    let mut out = Vec::with_capacity(limit.min(4096));
    let mut stored_after = after.copied();
    while out.len() < limit {
        let stored = page(stored_after.as_ref(), limit)?;
        let last_page = stored.len() < limit;
        for (cid, item) in stored {
            let key = cid.to_bytes();
            while let Some((_, value)) = buffered.next_if(|(k, _)| *k < key.as_slice()) {
                out.extend(value);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match buffered.next_if(|(k, _)| *k == key.as_slice()) {
                Some((_, value)) => out.extend(value),
                None => out.push(item),
            }
            if out.len() == limit {
                return Ok(out);
            }
            stored_after = Some(cid);
        }
        if last_page {
            out.extend(buffered.filter_map(|(_, value)| value).take(limit - out.len()));
            break;
        }
    }
    Ok(out)
}

pub(super) fn pin_page<'a>(
    buffered: impl Iterator<Item = (&'a [u8], Option<Pin>)>,
    after: Option<&Cid>,
    limit: usize,
    page: impl Fn(Option<&Cid>, usize) -> Result<Vec<Pin>, StateError>,
) -> Result<Vec<Pin>, StateError> {
    merged_page(buffered, after, limit, |after, limit| {
        Ok(page(after, limit)?.into_iter().map(|pin| (pin.cid, pin)).collect())
    })
}
