//! The operator dashboard over a real socket: who gets in, what it shows, that member data
//! is escaped — and, in headless Chromium driven over WebDriver, signing in and reading the
//! funnel as an operator does.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;
use tidings::http::{AppState, router};
use tidings::store::Store;

use crate::report::trial_shop;
use crate::shop::{Shop, at, event};

const TOKEN: &str = "s3cret-token";

/// Serves the HTTP routes on a free port; returns the base URL.
async fn spawn_app(store: Store) -> String {
    let state = AppState::new(store, tidings::state::Settings::default(), Some(TOKEN.into()), Arc::new(Utc::now));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    format!("http://{address}")
}

/// 120 members through the trial journey, a quarter of them ordering; one member whose
/// name is markup.
async fn seeded(store: Store) -> Shop {
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = trial_shop(store, t0).await;
    let mut joins: Vec<_> = (0..120)
        .map(|i| {
            let id = format!("m{i:03}");
            let consent = i % 5 != 0;
            event(
                &format!("join-{id}"),
                &id,
                "member.created",
                t0,
                json!({ "email": format!("{id}@example.com"), "email_consent": consent }),
            )
        })
        .collect();
    joins.push(event(
        "join-evil",
        "evil",
        "member.created",
        t0,
        json!({ "email": "evil@example.com", "email_consent": false, "first_name": "<script>alert(1)</script>" }),
    ));
    shop.happen(&joins, t0).await;
    let day2 = t0 + Duration::days(2);
    shop.engine.settle(day2).await.unwrap();
    let orders: Vec<_> = (0..120)
        .step_by(4)
        .map(|i| event(&format!("o-{i}"), &format!("m{i:03}"), "order.placed", day2, json!({ "total": 4_200 })))
        .collect();
    shop.happen(&orders, day2).await;
    shop
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

crate::engines::on_both_engines! {
    async fn the_dashboard_needs_the_token_and_the_login_sets_a_strict_http_only_cookie(store) {
        let shop = seeded(store).await;
        let base = spawn_app(shop.store.clone()).await;
        let client = no_redirects();

        let anonymous = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(anonymous.text().await.unwrap().contains("name=\"token\""), "the login form");
        let journey = client.get(format!("{base}/dashboard/journeys/trial")).send().await.unwrap();
        assert_eq!(journey.status(), 401);

        let wrong = client.post(format!("{base}/login")).form(&[("token", "guess")]).send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        assert!(wrong.headers().get("set-cookie").is_none());

        let login = client.post(format!("{base}/login")).form(&[("token", TOKEN)]).send().await.unwrap();
        assert_eq!(login.status(), 303);
        let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains(TOKEN), "the cookie is not the token: {cookie}");
        let session = cookie.split(';').next().unwrap().to_string();

        let home = client.get(format!("{base}/")).header("cookie", &session).send().await.unwrap();
        assert_eq!(home.status(), 200);
        let html = home.text().await.unwrap();
        assert!(html.contains("href=\"/dashboard/journeys/trial\""), "{html}");
        assert!(!html.contains("<script src") && !html.contains("http://") && !html.contains("https://"), "nothing from elsewhere");

        let bearer = client.get(format!("{base}/dashboard/journeys/trial")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(bearer.status(), 200);
        let html = bearer.text().await.unwrap();
        assert!(html.contains("<svg id=\"funnel-chart\"") && html.contains("class=\"experiment-chart\""));

        let forged = client.get(format!("{base}/")).header("cookie", "tidings_session=0000").send().await.unwrap();
        assert_eq!(forged.status(), 401);
    }

    async fn the_member_lookup_shows_why_a_message_was_not_sent_with_member_data_escaped(store) {
        let shop = seeded(store).await;
        let base = spawn_app(shop.store.clone()).await;
        let page = no_redirects().get(format!("{base}/dashboard/members?id=evil")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(!html.contains("<script>alert(1)</script>"), "member data is escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // Whatever path evil took, its timeline is there: it entered, and no email went out
        // (no consent), so any send step says why.
        assert!(html.contains("<td>enter</td>"), "{html}");
        let journal = shop.store.journal_of(Some("evil"), 100).await.unwrap();
        for line in journal.iter().filter(|l| l.action == "skip") {
            assert!(html.contains(&format!("<td>{}</td>", line.reason.as_deref().unwrap())));
        }
        let missing = no_redirects().get(format!("{base}/dashboard/members?id=%3Cb%3E")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        assert!(missing.text().await.unwrap().contains("&lt;b&gt;"));
    }
}

/// A free TCP port on localhost.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver on PATH, or why not.
fn chromedriver() -> Result<std::path::PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
        .ok_or_else(|| "chromedriver is not installed (apt-get install chromium chromium-driver)".to_string())
}

/// chromedriver, stopped when dropped.
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_operator_signs_in_in_a_browser_and_reads_the_funnel() {
    let driver_path = match chromedriver() {
        Ok(path) => path,
        Err(reason) if std::env::var_os("CI").is_some() => panic!("CI must run the browser test: {reason}"),
        Err(reason) => {
            eprintln!("skipping the browser test: {reason}");
            return;
        }
    };
    let (pool, _dir) = crate::support::sqlite_pool().await;
    let shop = seeded(Store::Sqlite(pool)).await;
    let report = tidings::report::load(&shop.store, "trial", None).await.unwrap().unwrap();
    // The trial journey sent nothing in the last hour of its third day, after sending on the
    // first two: a `no_sends` alert fires.
    let silent = tidings::alert::Rule {
        name: "trial_silent".into(),
        kind: tidings::alert::Kind::NoSends,
        window: 3_600,
        threshold: 0.0,
        min_sample: 1,
        for_: 0,
        baseline: 7 * 86_400,
        scope: tidings::alert::Scope { journey: Some("trial".into()), ..Default::default() },
        email: None,
    };
    let day3 = at("2026-03-05T02:00:00Z");
    shop.store.evaluate_alerts(&[silent], "test", day3, &|_| Vec::new()).await.unwrap();
    let base = spawn_app(shop.store.clone()).await;

    let port = free_port();
    let _driver = Driver(
        std::process::Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for attempt in 0.. {
        if http.get(format!("{webdriver}/status")).send().await.is_ok() {
            break;
        }
        assert!(attempt < 100, "chromedriver did not come up on port {port}");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1700"] }),
    );
    // chromedriver speaks plain HTTP on localhost: no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = fantoccini::ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&webdriver)
        .await
        .expect("a headless Chromium session");

    let result = async {
        use fantoccini::Locator;
        browser.goto(&base).await?;
        browser.find(Locator::Css("#token")).await?.send_keys(TOKEN).await?;
        browser.find(Locator::Css("#sign-in")).await?.click().await?;
        let alert = browser.find(Locator::Css("#alerts tr.alert-firing")).await?.text().await?;
        let alert_color = browser.find(Locator::Css("#alerts tr.alert-firing td")).await?.css_value("color").await?;
        browser.find(Locator::Css("#alerts a[href='/dashboard/journeys/trial']")).await?;
        browser.find(Locator::Css("#journeys a[href='/dashboard/journeys/trial']")).await?.click().await?;
        browser.wait().for_element(Locator::Css("#funnel")).await?;
        let mut shown = Vec::new();
        for step in &report.funnel {
            let mut row = Vec::new();
            for column in ["entered", "sent", "converted"] {
                let css = format!("#funnel tr[data-step='{}'] td[data-col='{column}']", step.step);
                row.push(browser.find(Locator::Css(&css)).await?.text().await?);
            }
            shown.push((step.step.clone(), row));
        }
        let total = browser.find(Locator::Css("#total-converted")).await?.text().await?;
        let png = browser.screenshot().await?;
        Ok::<_, fantoccini::error::CmdError>((shown, total, png, alert, alert_color))
    }
    .await;
    let _ = browser.close().await;
    let (shown, total, png, alert, alert_color) = result.expect("the dashboard in the browser");
    assert!(alert.starts_with("trial_silent no_sends firing 0 sends"), "the alerts panel: {alert}");
    assert!(alert.contains("0 sends in 1h") && alert.contains("journey trial"), "{alert}");
    assert_eq!(alert_color, "rgba(176, 0, 32, 1)", "a firing alert is red");

    let expected: Vec<(String, Vec<String>)> = report
        .funnel
        .iter()
        .map(|s| {
            let entered = s.entered.map_or_else(|| "-".to_string(), |n| n.to_string());
            (s.step.clone(), vec![entered, s.sent.to_string(), s.converted.to_string()])
        })
        .collect();
    assert_eq!(shown, expected, "the browser shows the report's funnel");
    assert_eq!(total, "30", "30 of the 120 members ordered");
    assert!(report.funnel.iter().any(|s| s.sent > 0 && s.converted > 0), "a funnel worth looking at");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("dashboard.png"), png).unwrap();
}
