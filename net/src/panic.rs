//! Contained panics: a panic while serving one gRPC call fails that call, not the core.
//!
//! glommio does not catch panics: one unwinding out of a task's `poll` unwinds the
//! executor's run loop and ends the core's thread with every connection it serves. So
//! [`crate::grpc`] runs each call's handler future under `catch_unwind`, and a server that
//! spawns helper tasks for a call (a Watch stream's request reader) wraps them with
//! [`catch_call_panic`]. A caught panic is logged at error level with the method and ends
//! the call with [`call_panicked`]'s status; the connection and the core go on serving.
//!
//! What is not restored: state the handler shared with others and left half-changed when
//! it panicked (a `RefCell` borrow is released by unwinding, but a half-applied update is
//! not undone). Panics are programmer errors; containing them keeps one bad request from
//! taking the core's other clients down, it does not make the request's work valid.
//!
//! This relies on `panic = "unwind"` (Cargo's default, which the workspace keeps): with
//! `panic = "abort"` a panic ends the process before anything can catch it, so such a build
//! is refused at compile time below.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::status::{Code, Status};

#[cfg(panic = "abort")]
compile_error!(
    "net contains panics in gRPC calls with catch_unwind: build with panic = \"unwind\" \
     (Cargo's default); see net/src/panic.rs"
);

/// The message of the INTERNAL status a call ends with when its handler panicked. etcd has
/// no text for this (a panic in etcd ends the process); the panic's own text stays in the
/// server's log, as it may hold request data.
pub const PANIC_STATUS_MESSAGE: &str = "grpc: the server panicked while serving this call";

/// The text of a panic payload: the `&str` or `String` given to `panic!`, else a
/// placeholder.
pub fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(a panic payload that is not text)"
    }
}

/// Logs a panic caught while serving the call to `method` (e.g.
/// `"/etcdserverpb.Watch/Watch"`) at error level, fields `method` and `panic`, and returns
/// the status to end that call with: INTERNAL, [`PANIC_STATUS_MESSAGE`].
pub fn call_panicked(method: &str, payload: &(dyn Any + Send)) -> Status {
    tracing::error!(
        method,
        panic = panic_text(payload),
        "gRPC call panicked; failing it with INTERNAL"
    );
    Status::new(Code::Internal, PANIC_STATUS_MESSAGE)
}

/// Runs `future`; a panic while polling it is caught, logged for `method` and returned as
/// `Err` with [`call_panicked`]'s status. For the helper tasks a call spawns; the call
/// itself is wrapped by the gRPC server.
pub async fn catch_call_panic<T>(
    method: &str,
    future: impl Future<Output = T>,
) -> Result<T, Status> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| call_panicked(method, payload.as_ref()))
}
