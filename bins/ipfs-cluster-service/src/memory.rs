//! Gives the heap memory a burst of work freed back to the operating system. glibc keeps freed
//! memory in its arenas: after cluster-wide statuses of a million pins, members of the
//! `bench-scale` cluster stayed at 182–253 MB RSS against about 90 MB at rest, and one
//! `malloc_trim` brought them to 122–125 MB. The daemon trims every [`TRIM_INTERVAL`].

use std::time::Duration;

/// How often the daemon trims.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// Returns the allocator's free memory to the operating system where the allocator keeps it
/// (glibc); elsewhere does nothing.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases glibc's own free lists, taking each arena's
    // lock itself; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims every [`TRIM_INTERVAL`], off the async workers (a trim of a large heap takes a few
/// milliseconds), until dropped.
pub async fn trim_periodically() {
    loop {
        cluster_rt::sleep(TRIM_INTERVAL).await;
        if let Err(e) = tokio::task::spawn_blocking(trim).await {
            tracing::debug!("returning free memory to the system: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_after_a_large_free_keeps_the_heap_usable() {
        let buffers: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 256 * 1024]).collect();
        drop(buffers);
        trim();
        let after: Vec<u8> = vec![7; 1 << 20];
        assert!(after.iter().all(|b| *b == 7));
    }
}
