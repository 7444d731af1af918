//! A scripted mailing run: contacts with mixed consents, withdrawals, objections and
//! restrictions; the bulk NDJSON answer matches the single checks line for line, and the
//! change feed replayed from 0 gives the same suppression set.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, staff};

const CONTACTS: usize = 1500;

fn email(i: usize) -> String {
    format!("person{i}@example.org")
}

#[tokio::test]
async fn bulk_ndjson_matches_single_checks_and_the_feed() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let mut events = Vec::new();
    for i in 0..CONTACTS {
        let s = format!("S-{i}");
        events.push(json!({"type": "contact.linked", "subject": s, "contact": {"channel": "email", "address": email(i)}, "actor": staff()}));
        if i % 5 != 3 {
            events.push(json!({"type": "consent.granted", "subject": s, "purpose": "newsletter", "actor": staff()}));
        }
        match i % 5 {
            1 => events.push(json!({"type": "consent.withdrawn", "contact": {"channel": "email", "address": email(i)}, "purpose": "newsletter", "method": "email_link", "actor": {"kind": "subject"}})),
            2 => events.push(json!({"type": "objection.raised", "subject": s, "actor": {"kind": "subject"}})),
            4 => events.push(json!({"type": "restriction.applied", "subject": s, "actor": staff()})),
            _ => {}
        }
    }
    for chunk in events.chunks(1000) {
        let r = app.post_batch(&app.record, &json!(chunk)).await;
        assert_eq!(r.status(), 201);
    }

    // NDJSON in, with two bad lines and a blank one.
    let mut body = String::new();
    for i in 0..CONTACTS {
        body.push_str(&json!({"email": email(i), "purpose": "newsletter"}).to_string());
        body.push('\n');
        if i == 10 {
            body.push_str("{\"email\": \"not an email\", \"purpose\": \"newsletter\"}\n\n");
        }
        if i == 20 {
            body.push_str("{\"email\": \"a@example.org\", \"purpose\": \"no-such-purpose\"}\n");
        }
    }
    let resp = app
        .client
        .post(app.url("/v1/checks"))
        .bearer_auth(&app.check)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let answers: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), CONTACTS + 2);
    assert_eq!(answers[11]["error"]["type"], "/problems/invalid-query");
    assert_eq!(answers[22]["error"]["status"], 404);
    let answers: Vec<&Value> = answers.iter().filter(|a| a.get("error").is_none()).collect();
    assert_eq!(answers.len(), CONTACTS);

    // Line for line the same as single checks (a sample of every kind, and then all).
    let mut bulk_suppressed = BTreeSet::new();
    for (i, a) in answers.iter().enumerate() {
        let single = app.check(&[("email", &email(i)), ("purpose", "newsletter")]).await;
        assert_eq!((&single["permitted"], &single["reason"]), (&a["permitted"], &a["reason"]), "line {i}");
        assert_eq!(a["permitted"], i % 5 == 0, "line {i}: {a}");
        if a["permitted"] == false {
            bulk_suppressed.insert(format!("S-{i}"));
        }
    }

    // Replaying the feed from 0 gives the same suppression set.
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut state: BTreeMap<String, (bool, bool, bool, bool)> = BTreeMap::new(); // granted, withdrawn, objected, restricted
    let mut after = 0;
    loop {
        let page: Value = app
            .client
            .get(app.url(&format!("/v1/feed?after={after}&limit=1000")))
            .bearer_auth(&app.check)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for r in page["events"].as_array().unwrap() {
            let e = &r["event"];
            let subject = e["subject"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| e["contact"]["index"].as_str().and_then(|i| links.get(i).cloned()));
            let Some(subject) = subject else { continue };
            let s = state.entry(subject.clone()).or_default();
            match e["type"].as_str().unwrap() {
                "contact.linked" => {
                    links.insert(e["contact"]["index"].as_str().unwrap().to_owned(), subject);
                }
                "consent.granted" => s.0 = true,
                "consent.withdrawn" => s.1 = true,
                "objection.raised" => s.2 = true,
                "restriction.applied" => s.3 = true,
                _ => {}
            }
        }
        after = page["next_after"].as_u64().unwrap();
        if page["has_more"] != true {
            break;
        }
    }
    let feed_suppressed: BTreeSet<String> =
        state.into_iter().filter(|(_, (g, w, o, r))| !g || *w || *o || *r).map(|(s, _)| s).collect();
    assert_eq!(feed_suppressed, bulk_suppressed);
}

#[tokio::test]
async fn a_json_checks_body_must_be_json_or_ndjson() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let r = app
        .client
        .post(app.url("/v1/checks"))
        .bearer_auth(&app.check)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(r, reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = "[".to_owned() + &"{\"subject\":\"T-1\",\"purpose\":\"newsletter\"},".repeat(120_000) + "{}]";
    let r = app
        .client
        .post(app.url("/v1/checks"))
        .bearer_auth(&app.check)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(r, reqwest::StatusCode::PAYLOAD_TOO_LARGE).await;
}

/// Most HTTP clients send the whole body before they read the answer. A list far larger than
/// the sockets' buffers must still be answered in full: the server keeps reading while the
/// answers wait for the client. (Timeouts turn a stall into a failure, not a hang.)
#[tokio::test]
async fn a_client_that_sends_the_whole_list_before_reading_gets_every_answer() {
    use std::io::{Read, Write};
    const LINES: usize = 400_000;
    let app = spawn_app().await;
    app.with_purposes().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let key = app.check.clone();
    let (status_line, answers) = tokio::task::spawn_blocking(move || {
        let mut body = String::with_capacity(LINES * 56);
        for i in 0..LINES {
            body.push_str(&format!("{{\"email\":\"p{i}@example.org\",\"purpose\":\"newsletter\"}}\n"));
        }
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_write_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        let head = format!(
            "POST /v1/checks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).expect("the server keeps reading the list");
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("the answers arrive");
        // The head, then the chunked body.
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
        let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        let (mut rest, mut body) = (&out[split..], Vec::new());
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").expect("a chunk size");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        let text = String::from_utf8(body).unwrap();
        let no_consent = text.lines().filter(|l| l.starts_with(r#"{"permitted":false,"reason":"no_consent""#)).count();
        (head.lines().next().unwrap_or_default().to_owned(), (text.lines().count(), no_consent))
    })
    .await
    .unwrap();
    assert_eq!(status_line, "http/1.1 200 ok");
    assert_eq!(answers, (LINES, LINES), "one answer per line, each a decision");
}

/// Opens an NDJSON bulk check with a chunked body that stays open; answers the stream and
/// what the server sent first (its status line, and the headers).
fn open_chunked_bulk(addr: &str, key: &str) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/checks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let line = "{\"subject\":\"T-1\",\"purpose\":\"newsletter\"}\n";
    write!(s, "{:x}\r\n{line}\r\n", line.len()).unwrap();
    s.flush().unwrap();
    // Read until the first answer line (or the end of a refusal) has arrived.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("permitted") && !String::from_utf8_lossy(&got).contains("problems/") {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    (s, String::from_utf8_lossy(&got).into_owned())
}

/// An interactive client sends one line and waits: it gets that line's answer while its
/// request is still open. Past the limit of streams at once, one more is refused with 503
/// and Retry-After, and a place comes free when a stream ends.
#[tokio::test]
async fn a_paused_client_gets_its_answers_and_streams_are_limited() {
    use std::io::Write;
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(serde_json::json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": crate::helpers::staff()})).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let key = app.check.clone();
    let max = consent_ledger::http::routes::bulk::MAX_STREAMS;
    let (open, refused) = tokio::task::spawn_blocking(move || {
        let mut open = Vec::new();
        for _ in 0..max {
            let (s, got) = open_chunked_bulk(&addr, &key);
            assert!(got.starts_with("HTTP/1.1 200"), "{got}");
            assert!(got.contains("\"permitted\":true"), "no answer while the request is open: {got}");
            open.push(s);
        }
        let (_, refused) = open_chunked_bulk(&addr, &key);
        // The streams end (their clients finish and go); a place comes free.
        for mut s in open.drain(..) {
            let _ = write!(s, "0\r\n\r\n");
            let _ = s.flush();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (_, again) = open_chunked_bulk(&addr, &key);
        (again, refused)
    })
    .await
    .unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.to_lowercase().contains("retry-after: 1") && refused.contains("/problems/busy"), "{refused}");
    assert!(open.starts_with("HTTP/1.1 200"), "no place came free: {open}");
}

/// A client that sends a long list and never reads is broken off once its answers fill the
/// spool and the reader timeout passes: its stream ends short (no closing chunk), and its
/// place among the streams comes free.
#[tokio::test]
async fn a_client_that_never_reads_is_broken_off() {
    use std::io::{Read, Write};
    let limits = consent_ledger::http::BulkLimits {
        in_memory: 1024,
        file_limit: 4096,
        reader_timeout: std::time::Duration::from_millis(500),
    };
    let app = crate::helpers::spawn_app_with(consent_ledger::http::HttpOptions {
        workers: Some(1),
        bulk_limits: Some(limits),
        ..Default::default()
    })
    .await;
    app.with_purposes().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let key = app.check.clone();
    let tail = tokio::task::spawn_blocking(move || {
        let s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut body = String::new();
        // Far more answers than the sockets' buffers hold (~40 MB of them).
        for i in 0..150_000 {
            body.push_str(&format!("{{\"email\":\"p{i}@example.org\",\"purpose\":\"newsletter\"}}\n"));
        }
        let head = format!(
            "POST /v1/checks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The body goes from another thread: once the server breaks the client off, it may
        // stop reading, and the write then ends with an error (that is expected).
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(head.as_bytes()).and_then(|()| w.write_all(body.as_bytes()));
        });
        // Read nothing for longer than the reader timeout, then everything there is.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let mut got = Vec::new();
        let _ = (&s).read_to_end(&mut got);
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
        got
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&tail);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..text.len().min(200)]);
    assert!(!text.ends_with("0\r\n\r\n"), "the stream of a client that never read ended as if complete");
    let answers = text.matches("\"permitted\"").count();
    assert!(answers < 150_000, "every answer arrived: the client was not broken off");
}

/// One person's events about two purposes answer each purpose by its own events, whether
/// asked one at a time, in a list about one purpose, or in a list mixing both (a check reads
/// only the facts that bear on its purpose; a mixed list reads them all).
#[tokio::test]
async fn each_purpose_is_answered_by_its_own_events_alone_or_in_a_mixed_list() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let jane = json!({"channel": "email", "address": "jane@example.org"});
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": jane, "actor": staff()})).await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    app.record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "repairs-updates", "actor": staff()}))
        .await;
    let app = &app;
    let answers = |body: Value| async move {
        let r = app.post_checks(&app.check, &body).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let answers: Vec<Value> = r.json().await.unwrap();
        answers
            .iter()
            .map(|a| (a["permitted"].as_bool().unwrap(), a["reason"].as_str().unwrap().to_owned()))
            .collect::<Vec<_>>()
    };
    let newsletter = (true, "consent_granted".to_owned());
    let repairs = (false, "opted_out".to_owned());
    for _ in 0..2 {
        // The second time from the facts cache.
        for (purpose, want) in [("newsletter", &newsletter), ("repairs-updates", &repairs)] {
            let single = app.check(&[("email", "jane@example.org"), ("purpose", purpose)]).await;
            assert_eq!((single["permitted"].as_bool().unwrap(), single["reason"].as_str().unwrap().to_owned()), *want);
        }
        let mixed = json!([
            {"email": "jane@example.org", "purpose": "newsletter"},
            {"email": "jane@example.org", "purpose": "repairs-updates"},
            {"subject": "T-1", "purpose": "repairs-updates"},
            {"subject": "T-1", "purpose": "newsletter"},
        ]);
        assert_eq!(
            answers(mixed).await,
            vec![newsletter.clone(), repairs.clone(), repairs.clone(), newsletter.clone()]
        );
        let one = json!([
            {"email": "jane@example.org", "purpose": "repairs-updates"},
            {"subject": "T-1", "purpose": "repairs-updates"},
        ]);
        assert_eq!(answers(one).await, vec![repairs.clone(), repairs.clone()]);
    }
}
