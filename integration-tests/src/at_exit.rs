//! Work to do when the process exits: statics are never dropped, so what a
//! process-wide resource owns (a moto server, a LocalStack container, a
//! directory) is released from an `atexit` hook instead.

use std::sync::{Mutex, Once};

type Job = Box<dyn FnOnce() + Send>;

static JOBS: Mutex<Vec<Job>> = Mutex::new(Vec::new());

/// Runs `job` when the process exits normally (`exit`, or returning from
/// `main`, which is how the test harness ends), last registered first.
pub fn at_exit(job: impl FnOnce() + Send + 'static) {
    static REGISTER: Once = Once::new();
    JOBS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(job));
    REGISTER.call_once(|| {
        extern "C" fn run_jobs() {
            let jobs = std::mem::take(&mut *JOBS.lock().unwrap_or_else(|p| p.into_inner()));
            for job in jobs.into_iter().rev() {
                // A panic must not unwind into C.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        }
        // SAFETY: `run_jobs` is an `extern "C" fn()` that catches panics.
        unsafe {
            libc::atexit(run_jobs);
        }
    });
}
