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
            // Past the last buffered key, the store's items go as they are (no key to compare).
            let replaced = if buffered.peek().is_some() {
                let key = cid.to_bytes();
                while let Some((_, value)) = buffered.next_if(|(k, _)| *k < key.as_slice()) {
                    out.extend(value);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
                buffered.next_if(|(k, _)| *k == key.as_slice())
            } else {
                None
            };
            match replaced {
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
    let mut buffered = buffered.peekable();
    if buffered.peek().is_none() {
        // Nothing buffered past `after`: the store's page is the answer, not copied again.
        return page(after, limit);
    }
    merged_page(buffered, after, limit, |after, limit| {
        Ok(page(after, limit)?.into_iter().map(|pin| (pin.cid, pin)).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Item = (Cid, String);

    /// Ten stored items, in the store's order.
    fn stored() -> Vec<Item> {
        let mut items: Vec<Item> = (0..10u8)
            .map(|i| (Cid::raw_sha256(&[i]), format!("stored {i}")))
            .collect();
        items.sort_by_key(|(cid, _)| cid.to_bytes());
        items
    }

    /// Every page of `limit` of `buffered` (in key order) over the store, concatenated.
    fn pages_of(buffered: &[(Vec<u8>, Option<Item>)], limit: usize) -> Vec<String> {
        let store = stored();
        let page = |after: Option<&Cid>, limit: usize| -> Result<Vec<(Cid, Item)>, StateError> {
            let from = after.map_or(0, |after| {
                store
                    .iter()
                    .position(|(cid, _)| cid.to_bytes() > after.to_bytes())
                    .unwrap_or(store.len())
            });
            Ok(store[from..]
                .iter()
                .take(limit)
                .map(|item| (item.0, item.clone()))
                .collect())
        };
        let mut out = Vec::new();
        let mut after: Option<Cid> = None;
        loop {
            let items = buffered
                .iter()
                .filter(|(key, _)| after.is_none_or(|after| key.as_slice() > after.to_bytes().as_slice()))
                .map(|(key, value)| (key.as_slice(), value.clone()));
            let got = merged_page(items, after.as_ref(), limit, page).unwrap();
            let done = got.len() < limit;
            after = got.last().map(|(cid, _)| *cid);
            out.extend(got.into_iter().map(|(_, name)| name));
            if done {
                return out;
            }
        }
    }

    /// Buffered items replace, hide and add to the stored ones in every page, and once the
    /// buffered run is used up the stored items follow unchanged.
    #[test]
    fn buffered_items_replace_hide_and_add_in_every_page() {
        let store = stored();
        let added = Cid::raw_sha256(b"added");
        let mut buffered = vec![
            (store[2].0.to_bytes(), Some((store[2].0, "buffered 2".to_string()))),
            (store[4].0.to_bytes(), None),
            (added.to_bytes(), Some((added, "added".to_string()))),
        ];
        buffered.sort_by(|a, b| a.0.cmp(&b.0));
        let mut expected: Vec<(Vec<u8>, String)> = store
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(i, (cid, name))| (cid.to_bytes(), if i == 2 { "buffered 2".into() } else { name.clone() }))
            .collect();
        expected.push((added.to_bytes(), "added".into()));
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, name)| name).collect();
        for limit in [1, 3, 4, 20] {
            assert_eq!(pages_of(&buffered, limit), expected, "pages of {limit}");
        }
        let all: Vec<String> = store.iter().map(|(_, name)| name.clone()).collect();
        for limit in [1, 3, 20] {
            assert_eq!(pages_of(&[], limit), all, "nothing buffered, pages of {limit}");
        }
    }
}
