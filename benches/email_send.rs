//! Email throughput into Postfix's `smtp-sink`, all in one run at the same concurrency:
//!
//! 1. `smtp-source` (Postfix's load generator): the ceiling of the sink on this machine;
//! 2. lettre's pooled `AsyncSmtpTransport` as configured by default (the baseline);
//! 3. our email channel with `TCP_NODELAY` off (lettre's socket behaviour, our pool);
//! 4. our email channel (pre-rendered messages), and its SMTP pool alone with one caller a
//!    connection and with eight (messages queued: one round trip each);
//! 5. render + send: each message rendered from `templates/birthday/gift` with tracked
//!    links, then sent through our channel.
//!
//! `cargo bench --bench email_send` (env: `MESSAGES`, default 20000; `SLOW_MESSAGES` for
//! phases 2 and 3, default 1000; `CONCURRENCY`, default 8, or a list like `8,32`).
//! smtp-sink and smtp-source come from `../shared/tools/get-smtp-sink` (or
//! `SMTP_SINK_BIN=/dir/with/both`).

#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tidings::channel::Channel;
use tidings::channels::email::{Composer, EmailSender, Settings};
use tidings::channels::smtp::{Pool, PoolSettings, SmtpUrl};
use tidings::channels::{Outgoing, Sender};
use tidings::links::LinkSigner;
use tidings::member::Member;
use tidings::template::{
    JourneyInfo, Links, MessageContext, RenderOptions, ShopInfo, StepInfo, TemplateCatalog, member_value,
};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `work(i)` for i in 0..n on `concurrency` tasks; messages per second.
async fn drive<F, Fut>(n: usize, concurrency: usize, work: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (work, next) = (work.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Fixture {
    catalog: TemplateCatalog,
    member: Member,
    signer: LinkSigner,
}

impl Fixture {
    fn load() -> Fixture {
        let (catalog, diagnostics) = TemplateCatalog::load(&smtp_sink::root().join("templates"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let text = std::fs::read_to_string(smtp_sink::root().join("tests/fixtures/templates/member.json")).unwrap();
        let member = serde_json::from_str(&text).unwrap();
        let signer = LinkSigner::new("https://t.example", b"bench-link-secret-0123456789abcdef").unwrap();
        Fixture { catalog, member, signer }
    }

    /// Renders the birthday email for member number `i`.
    fn outgoing(&self, i: usize) -> Outgoing {
        let mut member = self.member.clone();
        member.id = format!("cust-{i}");
        member.email = Some(format!("member{i}@example.com"));
        let links = self.signer.for_delivery(i as i64, &member.id, Channel::Email);
        let now = "2025-03-10T02:00:00Z".parse().unwrap();
        let context = MessageContext {
            member: member_value(&member, now, chrono_tz::Asia::Shanghai),
            event: serde_json::json!({}),
            journey: JourneyInfo { id: "birthday".into(), name: "Birthday".into() },
            step: StepInfo { id: "email".into() },
            variant: None,
            vars: serde_json::json!({"gift_points": 2000, "treat": "a free pot of tea"}).as_object().unwrap().clone(),
            links: Links { unsubscribe: links.unsubscribe_url(), preferences: "https://t.example/p".into() },
            shop: ShopInfo {
                name: "Tea House".into(),
                url: "https://teahouse.example".into(),
                support_email: "help@teahouse.example".into(),
                address: "88 Longjing Road, Hangzhou".into(),
            },
        };
        let options = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &links };
        let message = self.catalog.render("birthday/gift", Channel::Email, &context, &options).unwrap();
        Outgoing {
            delivery_id: i as i64,
            member_id: member.id,
            channel: Channel::Email,
            to: member.email.unwrap(),
            message,
            unsubscribe_url: Some(links.unsubscribe_url()),
        }
    }
}

fn composer() -> Composer {
    Composer::new(
        "Tea House <hello@teahouse.example>".parse().unwrap(),
        None,
        Some("unsubscribe@teahouse.example".parse().unwrap()),
    )
}

fn channel(port: u16, connections: usize, nodelay: bool) -> Arc<EmailSender> {
    let settings = Settings { connections, timeout: Duration::from_secs(30), messages_per_second: 0, nodelay };
    Arc::new(EmailSender::new(&format!("smtp://127.0.0.1:{port}"), composer(), settings).unwrap())
}

fn main() {
    let n = env_number("MESSAGES", 20_000);
    let slow = env_number("SLOW_MESSAGES", 1_000).min(n);
    let concurrencies: Vec<usize> = std::env::var("CONCURRENCY")
        .unwrap_or_else(|_| "8".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let fixture_for_profile = Fixture::load();
    if std::env::var("ONLY").as_deref() == Ok("render") {
        // For a profiler: render only, nothing else running.
        for i in 0..n {
            std::hint::black_box(fixture_for_profile.outgoing(i));
        }
        return;
    }
    let tools = smtp_sink::tools();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let fixture = Arc::new(fixture_for_profile);

    // One message, pre-rendered, for the phases that measure sending only.
    let sample = fixture.outgoing(0);
    let mime = composer().compose(&sample).unwrap();
    let size = mime.formatted().len();
    println!("message: birthday/gift, {size} bytes of MIME; {n} messages per fast phase, {slow} per slow phase");
    println!("machine: {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));

    for concurrency in concurrencies {
        let port = smtp_sink::free_port();
        let _sink = smtp_sink::start(&tools, port);
        println!("\nconcurrency {concurrency} (connections = sessions = tasks), smtp-sink on 127.0.0.1:{port}");

        let source = smtp_sink::smtp_source(&tools, port, n, concurrency, size);
        println!("  {:<44} {:>9.0} msg/s", "smtp-source -d (Postfix's client)", source);

        let lettre_rate = runtime.block_on(async {
            let transport: AsyncSmtpTransport<Tokio1Executor> =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                    .port(port)
                    .pool_config(PoolConfig::new().max_size(concurrency as u32))
                    .build();
            let transport = Arc::new(transport);
            let mime = Arc::new(mime.clone());
            drive(slow, concurrency, move |_| {
                let (transport, mime) = (transport.clone(), mime.clone());
                async move {
                    transport.send((*mime).clone()).await.expect("lettre send");
                }
            })
            .await
        });
        println!("  {:<44} {:>9.0} msg/s", "lettre AsyncSmtpTransport (pool, defaults)", lettre_rate);

        let nagle = runtime.block_on(async {
            let sender = channel(port, concurrency, false);
            let sample = Arc::new(sample.clone());
            drive(slow, concurrency, move |_| {
                let (sender, sample) = (sender.clone(), sample.clone());
                async move {
                    sender.send(&sample).await.expect("send");
                }
            })
            .await
        });
        println!("  {:<44} {:>9.0} msg/s", "tidings email channel, TCP_NODELAY off", nagle);

        let ours = runtime.block_on(async {
            let sender = channel(port, concurrency, true);
            let sample = Arc::new(sample.clone());
            drive(n, concurrency, move |_| {
                let (sender, sample) = (sender.clone(), sample.clone());
                async move {
                    sender.send(&sample).await.expect("send");
                }
            })
            .await
        });
        println!("  {:<44} {:>9.0} msg/s", "tidings email channel (TCP_NODELAY)", ours);

        // SMTP only, with as many callers as connections (each connection has one message
        // at a time: two round trips each) and with 8 callers a connection, as the engine
        // sends (the next message waits, so its commands ride behind this one's content).
        let pool_only = |callers: usize| {
            runtime.block_on(async {
                let url = SmtpUrl::parse(&format!("smtp://127.0.0.1:{port}")).unwrap();
                let settings =
                    PoolSettings { connections: concurrency, timeout: Duration::from_secs(30), nodelay: true };
                let pool = Arc::new(Pool::new(url, settings));
                let bytes = Arc::new(mime.formatted());
                let envelope = Arc::new(mime.envelope().clone());
                drive(n, callers, move |_| {
                    let (pool, bytes, envelope) = (pool.clone(), bytes.clone(), envelope.clone());
                    async move {
                        pool.send((*envelope).clone(), (*bytes).clone()).await.expect("send");
                    }
                })
                .await
            })
        };
        let (pool_only, pool_queued) = (pool_only(concurrency), pool_only(8 * concurrency));
        println!("  {:<44} {:>9.0} msg/s", "  of which SMTP only (pre-formatted bytes)", pool_only);
        println!("  {:<44} {:>9.0} msg/s", "  SMTP only, 8 callers a connection", pool_queued);
        let compose_only = {
            let composer = composer();
            let start = Instant::now();
            for _ in 0..5_000 {
                std::hint::black_box(composer.compose(&sample).unwrap().formatted());
            }
            5_000.0 / start.elapsed().as_secs_f64()
        };
        println!("  {:<44} {:>9.0} msg/s", "  of which MIME only (one thread)", compose_only);

        let end_to_end = runtime.block_on(async {
            let sender = channel(port, concurrency, true);
            let fixture = fixture.clone();
            drive(n, concurrency, move |i| {
                let (sender, fixture) = (sender.clone(), fixture.clone());
                async move {
                    let msg = fixture.outgoing(i);
                    sender.send(&msg).await.expect("send");
                }
            })
            .await
        });
        println!("  {:<44} {:>9.0} msg/s", "render + send through the channel", end_to_end);

        let render_only = {
            let start = Instant::now();
            for i in 0..2_000 {
                std::hint::black_box(fixture.outgoing(i));
            }
            2_000.0 / start.elapsed().as_secs_f64()
        };
        println!("  {:<44} {:>9.0} msg/s", "render only (one thread)", render_only);

        println!(
            "  ratios: channel / raw lettre = {:.1}; channel / smtp-source = {:.2}; render+send / smtp-source = {:.2}",
            ours / lettre_rate,
            ours / source,
            end_to_end / source
        );
    }
}
