//! Postfix's `smtp-sink` for the benches: found (or fetched without a mail server) by
//! `../shared/tools/get-smtp-sink`, or taken from `SMTP_SINK_BIN=/dir/with/smtp-sink`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The project root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding `smtp-sink` and `smtp-source`.
pub fn tools() -> PathBuf {
    if let Ok(dir) = std::env::var("SMTP_SINK_BIN") {
        return PathBuf::from(dir);
    }
    let script = root().join("../shared/tools/get-smtp-sink");
    let output = Command::new("bash").arg(&script).output().expect("run get-smtp-sink");
    assert!(output.status.success(), "get-smtp-sink failed: {}", String::from_utf8_lossy(&output.stderr));
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim().lines().last().unwrap())
}

/// A running `smtp-sink`, killed when dropped.
pub struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Sink {
    /// The CPU time `smtp-sink` has used so far.
    #[allow(dead_code)] // not every bench that includes this file counts CPU
    pub fn cpu(&self) -> Duration {
        process_cpu(&self.0.id().to_string())
    }
}

/// The CPU time (user + system, all threads) process `pid` has used so far; `"self"` for
/// this one. From `/proc/PID/stat`, in clock ticks.
#[allow(dead_code)]
pub fn process_cpu(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at the state (3):
    // utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// How many times this process's threads, the ones gone included, gave up a core:
/// waiting (voluntary) and preempted, from `getrusage`.
#[allow(dead_code)] // not every bench that includes this file counts switches
pub fn context_switches() -> (u64, u64) {
    let usage = rusage(libc::RUSAGE_SELF);
    (usage.ru_nvcsw as u64, usage.ru_nivcsw as u64)
}

/// CPU used by this process's children that have ended and been waited for (user and
/// system), from `getrusage`: around one `smtp-source` run, that run's own CPU.
#[allow(dead_code)] // not every bench that includes this file counts CPU
pub fn ended_children_cpu() -> Duration {
    let usage = rusage(libc::RUSAGE_CHILDREN);
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// `getrusage(who)`: this process (`RUSAGE_SELF`) or its ended children.
#[allow(dead_code)] // not every bench that includes this file reads it
fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: `getrusage` writes the struct it is given, which is zeroed and ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

/// CPU used so far by every process whose command name is `name` (e.g. the local
/// PostgreSQL server's backends, all named `postgres`): a sum over `/proc`. A process that
/// ends between two readings takes its share out of the later one.
#[allow(dead_code)] // not every bench that includes this file counts a server's CPU
pub fn named_processes_cpu(name: &str) -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name))
        .map(|e| process_cpu(e.file_name().to_str().unwrap_or_default()))
        .sum()
}

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `smtp-sink` on `127.0.0.1:{port}` and waits until it accepts connections.
pub fn start(tools: &Path, port: u16) -> Sink {
    // Dropping the `Sink` kills and waits for the process.
    let sink = Sink(
        Command::new(tools.join("smtp-sink"))
            .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "1024"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return sink;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("smtp-sink did not listen on {port}");
}

/// `smtp-source` (Postfix's load generator) sending `n` messages of `size` bytes over
/// `sessions` parallel sessions into `127.0.0.1:{port}`: the sink's ceiling, in messages/s.
#[allow(dead_code)] // not every bench that includes this file measures the ceiling
pub fn smtp_source(tools: &Path, port: u16, n: usize, sessions: usize, size: usize) -> f64 {
    let start = std::time::Instant::now();
    let status = Command::new(tools.join("smtp-source"))
        .args(["-d", "-s", &sessions.to_string(), "-m", &n.to_string(), "-l", &size.to_string()])
        .args(["-f", "hello@teahouse.example", "-t", "member@example.com", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .status()
        .expect("run smtp-source");
    assert!(status.success(), "smtp-source failed");
    n as f64 / start.elapsed().as_secs_f64()
}
