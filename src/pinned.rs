//! Work that talks to SQLite statement by statement runs on one CPU: a thread of its own,
//! pinned, with a single-threaded tokio runtime.
//!
//! Why: sqlx runs each SQLite connection on a thread of its own, so every statement is a
//! round trip between the task that sends it and that thread. With the two on different
//! CPUs each round trip wakes the other CPU — on a virtual machine a vCPU wake-up, measured
//! on our 2-core VM at ~200 µs a statement, several times what SQLite spends running it. On
//! one CPU it is a context switch. A thread created by a pinned thread inherits its CPU
//! (Linux), so a pool whose connections are opened from the pinned runtime keeps them there.
//!
//! Used by `simulate`, the engine loop of `serve`/`worker`, and the ingest writer.
//! Where the process may run on one CPU only, or cannot be pinned, the work runs unpinned.

use std::future::Future;

/// Which of the CPUs this process may run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    First,
    Last,
}

/// Runs `task()` to completion on a new thread named `name`, pinned to `cpu`, on a
/// single-threaded runtime. The returned receiver yields its output, or an error if the
/// task panicked.
pub fn spawn<F, Fut>(name: &str, cpu: Cpu, task: F) -> std::io::Result<tokio::sync::oneshot::Receiver<Fut::Output>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        pin_current_thread(cpu);
        let output = runtime.block_on(task());
        // The receiver is gone only if the caller stopped waiting.
        let _ = reply.send(output);
    })?;
    Ok(answer)
}

/// Pins the calling thread to `cpu`; does nothing where there is one CPU or no affinity.
fn pin_current_thread(cpu: Cpu) {
    let Some(cores) = core_affinity::get_core_ids() else { return };
    if cores.len() < 2 {
        return;
    }
    let core = match cpu {
        Cpu::First => cores.first(),
        Cpu::Last => cores.last(),
    };
    if let Some(core) = core {
        core_affinity::set_for_current(*core);
    }
}
