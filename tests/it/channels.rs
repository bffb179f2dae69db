//! Channels against real servers: email through lettre into an SMTP server started here
//! (and parsed with `mailparse`), SMS and push against wiremock, webhook signatures, the
//! outbox, and how every provider answer is classified.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tidings::channel::Channel;
use tidings::channels::{ChannelConfigError, Channels, Outgoing, SendError, Sender, push, sms, webhook};
use tidings::config::Config;
use tidings::template::{RenderOptions, Rendered};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{SmtpServer, example_templates, fixture_member, link_signer, message_context};

const SCRIPT: &str = "<script>alert(1)</script>";

/// The birthday email for a member whose first name is a script, tracked and with its
/// one-click unsubscribe link.
fn birthday_email(delivery_id: i64) -> Outgoing {
    let mut member = fixture_member();
    member.first_name = Some(SCRIPT.into());
    let links = link_signer().for_delivery(delivery_id, &member.id, Channel::Email);
    let vars: tidings::journey::model::Vars =
        BTreeMap::from([("gift_points".into(), json!(2000)), ("treat".into(), json!("a free pot of tea"))]);
    let context = message_context(&member, &vars, &links);
    let options = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &links };
    let message = example_templates().render("birthday/gift", Channel::Email, &context, &options).unwrap();
    Outgoing {
        delivery_id,
        member_id: member.id.clone(),
        channel: Channel::Email,
        to: member.email.clone().unwrap(),
        message,
        unsubscribe_url: Some(links.unsubscribe_url()),
    }
}

fn smtp_config() -> Config {
    let mut config = Config::default();
    config.channels.email.unsubscribe_mailto = Some("unsubscribe@teahouse.example".into());
    config.channels.email.from = Some("Tea House <hello@teahouse.example>".into());
    config
}

fn smtp_channels(server: &SmtpServer, config: &Config) -> Channels {
    Channels::from_config(config, |key| (key == "TIDINGS_SMTP_URL").then(|| server.url.clone())).unwrap()
}

/// Email over SMTP to `server` on a single connection, so queued messages share it.
fn one_connection(server: &SmtpServer) -> Channels {
    let mut config = smtp_config();
    config.channels.email.connections = 1;
    smtp_channels(server, &config)
}

fn header(mail: &mailparse::ParsedMail<'_>, name: &str) -> String {
    use mailparse::MailHeaderMap;
    mail.headers.get_first_value(name).unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn an_email_arrives_as_multipart_alternative_with_its_headers_and_escaped_html() {
    let server = SmtpServer::start(None).await;
    let channels = smtp_channels(&server, &smtp_config());
    assert_eq!(channels.sender(Channel::Email).provider(), "smtp");

    let msg = birthday_email(4242);
    let receipt = channels.send(&msg).await.unwrap();

    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].mail_from, "<hello@teahouse.example>");
    assert_eq!(mails[0].rcpt_to, vec!["<li.wei@example.com>"]);
    let mail = mailparse::parse_mail(&mails[0].data).unwrap();

    assert!(header(&mail, "Subject").starts_with("生日快乐, "), "{}", header(&mail, "Subject"));
    assert_eq!(header(&mail, "From"), "\"Tea House\" <hello@teahouse.example>");
    assert_eq!(header(&mail, "To"), "li.wei@example.com");
    let message_id = header(&mail, "Message-ID");
    assert!(message_id.starts_with("<delivery-4242.") && message_id.ends_with("@teahouse.example>"), "{message_id}");
    assert_eq!(receipt.provider_message_id.as_deref(), Some(message_id.as_str()));

    let list_unsubscribe = header(&mail, "List-Unsubscribe");
    let unsubscribe = msg.unsubscribe_url.as_deref().unwrap();
    let token = unsubscribe.rsplit('/').next().unwrap();
    assert_eq!(
        list_unsubscribe,
        format!("<{unsubscribe}>, <mailto:unsubscribe@teahouse.example?subject=unsubscribe%20{token}>")
    );
    assert!(unsubscribe.starts_with("https://t.example/u/"));
    assert_eq!(header(&mail, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");

    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let types: Vec<&str> = mail.subparts.iter().map(|p| p.ctype.mimetype.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    let text = mail.subparts[0].get_body().unwrap();
    let html = mail.subparts[1].get_body().unwrap();
    let Rendered::Email { html: rendered_html, text: rendered_text, .. } = &msg.message else { unreachable!() };
    assert_eq!(html.replace("\r\n", "\n").trim_end(), rendered_html.trim_end());
    assert_eq!(text.replace("\r\n", "\n").trim_end(), rendered_text.trim_end());

    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;") || html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains(SCRIPT), "member input must be escaped in the HTML");
    assert!(text.contains("生日快乐"));
    assert!(html.contains(r#"<img src="https://t.example/o/"#), "the open pixel is in the HTML");
    assert!(html.contains("https://t.example/c/"), "links are tracked");
}

#[tokio::test]
async fn commands_are_pipelined_when_the_server_offers_it_and_mail_arrives_the_same_either_way() {
    let messages: Vec<Outgoing> = (0..5).map(birthday_email).collect();
    let pipelining = SmtpServer::start(None).await;
    let plain = SmtpServer::without_pipelining().await;
    for server in [&pipelining, &plain] {
        let channels = smtp_channels(server, &smtp_config());
        for msg in &messages {
            channels.send(msg).await.unwrap();
        }
    }
    use std::sync::atomic::Ordering::SeqCst;
    // MAIL FROM, RCPT TO and DATA in one write: the RCPT was there before MAIL's answer.
    assert_eq!(pipelining.pipelined.load(SeqCst), 5);
    assert_eq!(plain.pipelined.load(SeqCst), 0, "no PIPELINING offered: one command at a time");
    assert_eq!(pipelining.connections.load(SeqCst), 1, "a pipelined connection is reused");
    let (a, b) = (pipelining.mails(), plain.mails());
    assert_eq!(a.len(), 5);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.mail_from, &x.rcpt_to), (&y.mail_from, &y.rcpt_to));
        let (x, y) = (mailparse::parse_mail(&x.data).unwrap(), mailparse::parse_mail(&y.data).unwrap());
        assert_eq!(header(&x, "Message-ID"), header(&y, "Message-ID"));
        assert_eq!(x.subparts[1].get_body().unwrap(), y.subparts[1].get_body().unwrap());
    }
}

#[tokio::test]
async fn after_a_refused_recipient_the_next_message_goes_out_on_a_fresh_connection() {
    let server = SmtpServer::start(Some("550 5.1.1 <li.wei@example.com>: no such user")).await;
    let channels = smtp_channels(&server, &smtp_config());
    for id in 0..2 {
        let error = channels.send(&birthday_email(id)).await.unwrap_err();
        assert!(!error.is_transient(), "{error:?}");
    }
    // The server was waiting for a body after the refusal: that connection is given up.
    assert_eq!(server.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(server.mails().is_empty());
}

#[tokio::test]
async fn queued_messages_go_one_round_trip_each_behind_the_previous_content() {
    let server = SmtpServer::start(None).await;
    let channels = one_connection(&server);
    let messages: Vec<Outgoing> = (0..20).map(birthday_email).collect();
    let results = futures_util::future::join_all(messages.iter().map(|m| channels.send(m))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(server.mails().len(), 20);
    assert_eq!(server.connections.load(SeqCst), 1);
    // The first message opens the group; the others wait on the one connection, and each
    // one's MAIL FROM travels behind the previous one's content (a read can split a
    // segment now and then, so not all 19 need to be seen that way).
    let behind = server.behind.load(SeqCst);
    assert!((10..=19).contains(&behind), "{behind} of 19 messages behind the previous content");
    let ids: std::collections::HashSet<String> =
        server.mails().iter().map(|m| header(&mailparse::parse_mail(&m.data).unwrap(), "Message-ID")).collect();
    assert_eq!(ids.len(), 20, "each message arrived once");
}

#[tokio::test]
async fn a_send_dropped_before_its_turn_never_goes_out() {
    // The engine drops (aborts) the sends of a batch whose outcomes it cannot record: a
    // message still waiting for a connection then must not be sent, or nobody would know.
    let server = SmtpServer::start(None).await;
    let channels = one_connection(&server);
    let messages: Vec<Outgoing> = (0..10).map(birthday_email).collect();
    let mut sends: Vec<_> = messages.iter().map(|m| Box::pin(channels.send(m))).collect();
    // Polled once, each send queues its message; the connection's task has not run yet.
    for send in &mut sends {
        assert!(futures_util::poll!(send.as_mut()).is_pending());
    }
    sends.truncate(5);
    for (i, sent) in futures_util::future::join_all(sends).await.into_iter().enumerate() {
        assert!(sent.is_ok(), "message {i}: {sent:?}");
    }
    // One more after them on the same connection: when it is through, anything queued
    // before it is too.
    channels.send(&birthday_email(10)).await.unwrap();
    let ids: Vec<String> =
        server.mails().iter().map(|m| header(&mailparse::parse_mail(&m.data).unwrap(), "Message-ID")).collect();
    assert_eq!(ids.len(), 6, "only the sends still awaited went out: {ids:?}");
    for i in 5..10 {
        assert!(!ids.iter().any(|id| id.starts_with(&format!("<delivery-{i}."))), "message {i} went out: {ids:?}");
    }
}

#[tokio::test]
async fn a_refused_recipient_in_a_pipelined_group_fails_alone_and_the_rest_arrive() {
    let server = SmtpServer::refusing("550 5.1.1 no such user", |to| to.contains("gone")).await;
    let channels = one_connection(&server);
    let messages: Vec<Outgoing> = (0..10)
        .map(|i| {
            let mut msg = birthday_email(i);
            if i == 4 {
                msg.to = "gone@example.com".into();
            }
            msg
        })
        .collect();
    let results = futures_util::future::join_all(messages.iter().map(|m| channels.send(m))).await;
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (4, Err(SendError::Permanent { reason })) => assert!(reason.contains("no such user"), "{reason}"),
            (4, other) => panic!("the refused recipient: {other:?}"),
            (_, result) => assert!(result.is_ok(), "message {i}: {result:?}"),
        }
    }
    assert_eq!(server.mails().len(), 9);
    // The refusal ends its connection; the messages after it go out on a new one.
    assert_eq!(server.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn smtp_5xx_is_permanent_and_4xx_is_transient() {
    let msg = birthday_email(1);
    let server = SmtpServer::start(Some("550 5.1.1 <li.wei@example.com>: no such user")).await;
    match smtp_channels(&server, &smtp_config()).send(&msg).await {
        Err(SendError::Permanent { reason }) => assert!(reason.contains("no such user"), "{reason}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    let server = SmtpServer::start(Some("451 4.7.1 greylisted, try again later")).await;
    match smtp_channels(&server, &smtp_config()).send(&msg).await {
        Err(SendError::Transient { reason, scope, .. }) => {
            assert!(reason.contains("greylisted"), "{reason}");
            assert_eq!(scope, tidings::channels::Scope::Message, "a 4xx is this message's to retry");
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert!(server.mails().is_empty());
    // 421: the server is closing the channel; no answer at all: it is gone. Both are the
    // provider's, which the engine pauses.
    let server = SmtpServer::start(Some("421 4.3.2 service shutting down")).await;
    match smtp_channels(&server, &smtp_config()).send(&msg).await {
        Err(SendError::Transient { scope, .. }) => assert_eq!(scope, tidings::channels::Scope::Provider),
        other => panic!("expected a transient failure, got {other:?}"),
    }
    let server = SmtpServer::start(None).await;
    server.set_down(true);
    match smtp_channels(&server, &smtp_config()).send(&msg).await {
        Err(SendError::Transient { scope, reason, .. }) => {
            assert_eq!(scope, tidings::channels::Scope::Provider, "{reason}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_smtp_server_that_is_down_is_a_transient_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    drop(listener);
    let channels = Channels::from_config(&smtp_config(), |k| (k == "TIDINGS_SMTP_URL").then(|| url.clone())).unwrap();
    let error = channels.send(&birthday_email(2)).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn concurrent_sends_share_the_configured_connections() {
    let server = SmtpServer::start(None).await;
    let mut config = smtp_config();
    config.channels.email.connections = 2;
    let channels = smtp_channels(&server, &config);
    let messages: Vec<Outgoing> = (0..20).map(birthday_email).collect();
    let results = futures_util::future::join_all(messages.iter().map(|m| channels.send(m))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.mails().len(), 20);
    let connections = server.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&connections), "{connections} connections for a pool of 2");
}

#[tokio::test]
async fn without_an_smtp_url_email_goes_to_the_outbox_as_the_same_mime() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = smtp_config();
    config.outbox_dir = dir.path().to_path_buf();
    let channels = Channels::from_config(&config, |_| None).unwrap();
    for channel in Channel::ALL {
        assert_eq!(channels.sender(channel).provider(), "outbox", "{channel}");
    }
    let msg = birthday_email(77);
    channels.send(&msg).await.unwrap();
    let eml = std::fs::read(dir.path().join("email/77.eml")).unwrap();
    let mail = mailparse::parse_mail(&eml).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    assert!(header(&mail, "Subject").starts_with("生日快乐"));
    assert!(header(&mail, "Message-ID").starts_with("<delivery-77."));
    assert_eq!(header(&mail, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
}

#[test]
fn a_provider_configured_without_its_secret_is_an_error_not_the_outbox() {
    let mut config = Config::default();
    config.channels.sms.account_sid = Some("AC123".into());
    config.channels.sms.from = Some("+15550001111".into());
    let error = Channels::from_config(&config, |_| None).unwrap_err();
    assert!(matches!(error, ChannelConfigError::MissingSecret { needed: "TIDINGS_SMS_AUTH_TOKEN", .. }), "{error}");

    let mut config = Config::default();
    config.channels.push.project_id = Some("tea-app".into());
    assert!(Channels::from_config(&config, |_| None).unwrap_err().to_string().contains("TIDINGS_FCM_TOKEN"));

    let mut config = Config::default();
    config.channels.webhook.url = Some("https://hooks.example/coupon".into());
    assert!(Channels::from_config(&config, |_| None).unwrap_err().to_string().contains("SIGNING_SECRET"));

    let error = Channels::from_config(&Config::default(), |k| (k == "TIDINGS_SMTP_URL").then(|| "http://x".into()))
        .unwrap_err();
    assert!(error.to_string().contains("TIDINGS_SMTP_URL"), "{error}");
}

// --- SMS -----------------------------------------------------------------------------------

const SID: &str = "AC0123456789";
const SMS_PATH: &str = "/2010-04-01/Accounts/AC0123456789/Messages.json";

fn sms_sender(server: &MockServer, from: sms::From, timeout: Duration) -> sms::SmsSender {
    sms::SmsSender::new(sms::Settings {
        base_url: server.uri(),
        account_sid: SID.into(),
        auth_token: "twilio-secret".into(),
        from,
        timeout,
        messages_per_second: 0,
    })
    .unwrap()
}

fn sms(to: &str) -> Outgoing {
    Outgoing {
        delivery_id: 31,
        member_id: "cust-1001".into(),
        channel: Channel::Sms,
        to: to.into(),
        message: Rendered::Sms { body: "Tea House: your 600 points expire on 3月31日. Reply STOP to opt out".into() },
        unsubscribe_url: None,
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn an_sms_is_a_twilio_form_post_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SMS_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM42", "status": "queued"})))
        .expect(1)
        .mount(&server)
        .await;
    let sender = sms_sender(&server, sms::From::Number("+15550001111".into()), Duration::from_secs(5));
    let receipt = sender.send(&sms("+8613800138000")).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("SM42"));

    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:twilio-secret"));
    assert_eq!(request.headers["authorization"], format!("Basic {basic}").as_str());
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(
        form(&request.body),
        [
            ("To".to_string(), "+8613800138000".to_string()),
            ("From".to_string(), "+15550001111".to_string()),
            ("Body".to_string(), "Tea House: your 600 points expire on 3月31日. Reply STOP to opt out".to_string()),
        ]
    );
}

#[tokio::test]
async fn an_sms_from_a_messaging_service_names_the_service_instead_of_a_number() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SMS_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM43"})))
        .mount(&server)
        .await;
    let sender = sms_sender(&server, sms::From::MessagingService("MG999".into()), Duration::from_secs(5));
    sender.send(&sms("+8613800138000")).await.unwrap();
    let fields = form(&server.received_requests().await.unwrap()[0].body);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "MessagingServiceSid", "Body"]);
    assert_eq!(fields[1].1, "MG999");
}

#[tokio::test]
async fn sms_answers_are_classified() {
    let server = MockServer::start().await;
    let sender = sms_sender(&server, sms::From::Number("+15550001111".into()), Duration::from_millis(300));
    let answer = |template: ResponseTemplate| {
        let server = &server;
        async move {
            server.reset().await;
            Mock::given(method("POST")).and(path(SMS_PATH)).respond_with(template).mount(server).await;
        }
    };

    answer(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "30")
            .set_body_json(json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
    )
    .await;
    match sender.send(&sms("+8613800138000")).await {
        Err(SendError::Transient { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(30))),
        other => panic!("429 must be transient, got {other:?}"),
    }

    answer(ResponseTemplate::new(400).set_body_json(json!({
        "code": 21211,
        "message": "The 'To' number +8613800000000 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400
    })))
    .await;
    match sender.send(&sms("+8613800000000")).await {
        Err(SendError::Permanent { reason }) => assert!(reason.contains("21211"), "{reason}"),
        other => panic!("an invalid number must be permanent, got {other:?}"),
    }

    answer(ResponseTemplate::new(503)).await;
    assert!(matches!(sender.send(&sms("+8613800138000")).await, Err(SendError::Transient { .. })));

    answer(ResponseTemplate::new(401).set_body_json(json!({"code": 20003, "message": "Authenticate"}))).await;
    assert!(
        matches!(sender.send(&sms("+8613800138000")).await, Err(SendError::Transient { .. })),
        "bad credentials are ours to fix: never suppress the member for them"
    );

    answer(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})).set_delay(Duration::from_secs(3))).await;
    match sender.send(&sms("+8613800138000")).await {
        Err(SendError::Transient { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a timeout must be transient, got {other:?}"),
    }

    let requests = server.received_requests().await.unwrap().len();
    assert!(matches!(sender.send(&sms("13800138000")).await, Err(SendError::Permanent { .. })));
    assert_eq!(server.received_requests().await.unwrap().len(), requests, "a non-E.164 number is never sent");
}

// --- Push ----------------------------------------------------------------------------------

const FCM_PATH: &str = "/v1/projects/tea-app/messages:send";

fn push_sender(server: &MockServer, timeout: Duration) -> push::PushSender {
    push::PushSender::new(push::Settings {
        base_url: server.uri(),
        project_id: "tea-app".into(),
        access_token: "ya29.test-token".into(),
        timeout,
        messages_per_second: 0,
    })
    .unwrap()
}

fn push_message() -> Outgoing {
    Outgoing {
        delivery_id: 55,
        member_id: "cust-1001".into(),
        channel: Channel::Push,
        to: "fcm-token-li-wei".into(),
        message: Rendered::Push {
            title: "生日快乐 🎂".into(),
            body: "2000 points are waiting".into(),
            deep_link: Some("teahouse://birthday".into()),
            image: Some("https://teahouse.example/cake.png".into()),
        },
        unsubscribe_url: None,
    }
}

#[tokio::test]
async fn a_push_is_an_fcm_v1_request_with_a_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FCM_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "projects/tea-app/messages/0:99"})))
        .expect(1)
        .mount(&server)
        .await;
    let receipt = push_sender(&server, Duration::from_secs(5)).send(&push_message()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("projects/tea-app/messages/0:99"));

    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(request.headers["authorization"], "Bearer ya29.test-token");
    assert_eq!(request.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"message": {
            "token": "fcm-token-li-wei",
            "notification": {"title": "生日快乐 🎂", "body": "2000 points are waiting", "image": "https://teahouse.example/cake.png"},
            "data": {"delivery_id": "55", "deep_link": "teahouse://birthday"}
        }})
    );
}

fn fcm_error(status: u16, code: &str, error_code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "code": status,
        "message": "Requested entity was not found.",
        "status": code,
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
    }}))
}

#[tokio::test]
async fn push_answers_are_classified_and_unregistered_tokens_are_reported() {
    let server = MockServer::start().await;
    let sender = push_sender(&server, Duration::from_millis(300));
    let answer = |template: ResponseTemplate| {
        let server = &server;
        async move {
            server.reset().await;
            Mock::given(method("POST")).and(path(FCM_PATH)).respond_with(template).mount(server).await;
        }
    };

    answer(fcm_error(404, "NOT_FOUND", "UNREGISTERED")).await;
    assert_eq!(sender.send(&push_message()).await, Err(SendError::Unregistered { token: "fcm-token-li-wei".into() }));

    answer(fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED").insert_header("retry-after", "60")).await;
    match sender.send(&push_message()).await {
        Err(SendError::Transient { retry_after, reason, scope }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(60)));
            assert!(reason.contains("QUOTA_EXCEEDED"), "{reason}");
            assert_eq!(scope, tidings::channels::Scope::Provider, "a 429 pauses the provider, not the message");
        }
        other => panic!("429 must be transient, got {other:?}"),
    }

    answer(fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")).await;
    assert!(matches!(sender.send(&push_message()).await, Err(SendError::Permanent { .. })));

    answer(fcm_error(503, "UNAVAILABLE", "UNAVAILABLE")).await;
    assert!(matches!(sender.send(&push_message()).await, Err(SendError::Transient { .. })));

    answer(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
    match sender.send(&push_message()).await {
        Err(SendError::Transient { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a timeout must be transient, got {other:?}"),
    }
}

// --- Webhook -------------------------------------------------------------------------------

#[tokio::test]
async fn a_webhook_posts_the_rendered_json_signed_the_standard_webhooks_way() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/concierge"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let mut config = Config::default();
    config.channels.webhook.url = Some(format!("{}/hooks/concierge", server.uri()));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let channels =
        Channels::from_config(&config, |k| (k == "TIDINGS_WEBHOOK_SIGNING_SECRET").then(|| secret.into())).unwrap();
    let body = json!({"member_id": "cust-1001", "tier": "diamond", "text": "Please send a card to 李伟"});
    let msg = Outgoing {
        delivery_id: 808,
        member_id: "cust-1001".into(),
        channel: Channel::Webhook,
        to: String::new(),
        message: Rendered::Webhook { body: body.clone() },
        unsubscribe_url: None,
    };
    channels.send(&msg).await.unwrap();

    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(), body);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["webhook-id"], "delivery-808");
    let timestamp: i64 = request.headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    let expected = webhook::SigningSecret::parse(secret).unwrap().sign("delivery-808", timestamp, &request.body);
    assert_eq!(request.headers["webhook-signature"], expected.as_str());

    server.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    assert!(matches!(channels.send(&msg).await, Err(SendError::Transient { .. })));
    server.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(422)).mount(&server).await;
    assert!(matches!(channels.send(&msg).await, Err(SendError::Permanent { .. })));
}
