//! openraft's `AsyncRuntime` over the seam: spawning, sleeping, timeouts and randomness all
//! go through madsim-tokio, so Raft elections replay exactly under a simulator seed.
//!
//! Kept in one file so that a later move to openraft 0.10 (whose runtime trait changed) stays local.

use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend};

/// openraft's runtime, built on madsim-tokio.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct OpenraftRuntime;

/// A monotonic instant from the seam's clock (simulated under madsim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RtInstant(pub tokio::time::Instant);

impl Add<Duration> for RtInstant {
    type Output = RtInstant;
    fn add(self, rhs: Duration) -> RtInstant {
        RtInstant(self.0 + rhs)
    }
}

impl AddAssign<Duration> for RtInstant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl Sub<Duration> for RtInstant {
    type Output = RtInstant;
    fn sub(self, rhs: Duration) -> RtInstant {
        RtInstant(self.0 - rhs)
    }
}

impl Sub<RtInstant> for RtInstant {
    type Output = Duration;
    fn sub(self, rhs: RtInstant) -> Duration {
        self.0.saturating_duration_since(rhs.0)
    }
}

impl SubAssign<Duration> for RtInstant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 -= rhs;
    }
}

impl openraft::Instant for RtInstant {
    fn now() -> Self {
        RtInstant(tokio::time::Instant::now())
    }
}

/// A boxed future; used where the two runtimes' concrete future types differ.
pub struct BoxedSend<T>(Pin<Box<dyn Future<Output = T> + Send + Sync + 'static>>);

impl<T> Future for BoxedSend<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.0.as_mut().poll(cx)
    }
}

/// The error of a timed-out operation.
#[derive(Debug)]
pub struct TimeoutError;

impl std::fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

/// A future with a deadline: polls the inner future, then the deadline.
pub struct RtTimeout<T> {
    future: Pin<Box<T>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T: Future> Future for RtTimeout<T> {
    type Output = Result<T::Output, TimeoutError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(value) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimeoutError)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A spawned task's handle.
pub struct RtJoinHandle<T>(tokio::task::JoinHandle<T>);

impl<T> Future for RtJoinHandle<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// The sending half of a oneshot channel.
pub struct RtOneshotSender<T>(tokio::sync::oneshot::Sender<T>);

impl<T> std::fmt::Debug for RtOneshotSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RtOneshotSender")
    }
}

impl<T: OptionalSend> openraft::async_runtime::AsyncOneshotSendExt<T> for RtOneshotSender<T> {
    fn send(self, t: T) -> Result<(), T> {
        self.0.send(t)
    }
}

#[cfg(madsim)]
type RngImpl = madsim::rand::GlobalRng;
#[cfg(not(madsim))]
type RngImpl = rand08::rngs::StdRng;

#[cfg(madsim)]
fn rng_impl() -> RngImpl {
    madsim::rand::thread_rng()
}

#[cfg(not(madsim))]
fn rng_impl() -> RngImpl {
    // Seeded from the seam's rand 0.9 source; openraft only uses it for election jitter.
    use rand08::SeedableRng;
    rand08::rngs::StdRng::seed_from_u64(crate::random_u64())
}

impl AsyncRuntime for OpenraftRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = RtJoinHandle<T>;
    type Sleep = BoxedSend<()>;
    type Instant = RtInstant;
    type TimeoutError = TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = RtTimeout<T>;
    type ThreadLocalRng = RngImpl;
    type OneshotSender<T: OptionalSend> = RtOneshotSender<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        RtJoinHandle(tokio::spawn(future))
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        BoxedSend(Box::pin(tokio::time::sleep(duration)))
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        BoxedSend(Box::pin(tokio::time::sleep_until(deadline.0)))
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        Self::timeout_at(RtInstant(tokio::time::Instant::now() + duration), future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        RtTimeout {
            future: Box::pin(future),
            deadline: Box::pin(tokio::time::sleep_until(deadline.0)),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rng_impl()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (RtOneshotSender(tx), rx)
    }
}
