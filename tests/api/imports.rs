//! Records from before: CSV imports (over HTTP and by the command), suppression lists and
//! retention, on the real server.

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, bin, new_keys, newsletter, repairs, spawn_app, start_server, TestApp};
use consent_ledger::service::access::Role;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tenants.csv");
const MAPPING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tenants.toml");

/// The newsletter without a consent lifetime: the fixture's consents are from 2016.
fn lasting_newsletter() -> Value {
    let mut n = newsletter();
    n.as_object_mut().unwrap().remove("consent_valid_days");
    n
}

fn events_purpose() -> Value {
    json!({"title": "Events near you", "basis": "consent", "marketing": true, "channels": ["email", "sms", "post"]})
}

/// The rows of the fixture that must be refused: (row, column, words of the reason).
const REJECTS: [(u64, &str, &str); 7] = [
    (5, "Consent", "is blank"),
    (6, "Date", "in the future"),
    (7, "Purpose", "unknown purpose"),
    (9, "Email", "email address is not valid"),
    (11, "Consent", "neither yes nor no"),
    (12, "row_id", "repeats the source id of row 3"),
    (13, "", "nothing to record"),
];

async fn upload(app: &TestApp, csv: Vec<u8>, mapping: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = Form::new()
        .text("mapping", mapping.to_string())
        .part("file", Part::bytes(csv).file_name("tenants.csv").mime_str("text/csv").unwrap());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    app.client.post(app.url("/v1/imports")).bearer_auth(&app.record).multipart(form).send().await.unwrap()
}

/// Uploads and waits for the job to finish; returns the finished job.
async fn import(app: &TestApp, csv: Vec<u8>, mapping: &str, extra: &[(&str, &str)]) -> Value {
    let resp = upload(app, csv, mapping, extra).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let job: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("/v1/imports/{}", job["id"].as_str().unwrap()));
    for _ in 0..500 {
        let job: Value =
            app.client.get(app.url(&location)).bearer_auth(&app.audit).send().await.unwrap().json().await.unwrap();
        if job["state"] != "running" {
            assert_eq!(job["state"], "done", "{job}");
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the import did not finish");
}

async fn permitted(app: &TestApp, query: &[(&str, &str)]) -> (bool, String) {
    let a = app.check(query).await;
    (a["permitted"].as_bool().unwrap(), a["reason"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_csv_file_imports_its_events_refuses_its_awkward_rows_and_a_rerun_records_nothing() {
    let app = spawn_app().await;
    assert_eq!(app.put_purpose(&app.admin, "newsletter", &lasting_newsletter()).await.status(), StatusCode::OK);
    assert_eq!(app.put_purpose(&app.admin, "events", &events_purpose()).await.status(), StatusCode::OK);
    let csv = std::fs::read(FIXTURE).unwrap();
    let mapping = std::fs::read_to_string(MAPPING).unwrap();
    let before = app.log_size().await;

    // A dry run checks every row and writes nothing.
    let dry = import(&app, csv.clone(), &mapping, &[("dry_run", "true")]).await;
    assert_eq!(dry["counts"]["events_new"], 10, "{dry}");
    assert_eq!(app.log_size().await, before);

    let job = import(&app, csv.clone(), &mapping, &[]).await;
    let c = &job["counts"];
    assert_eq!(
        (c["rows"].as_u64(), c["imported"].as_u64(), c["duplicates"].as_u64(), c["rejected"].as_u64()),
        (Some(13), Some(5), Some(1), Some(7)),
        "{job}"
    );
    assert_eq!((c["events_new"].as_u64(), c["events_existing"].as_u64()), (Some(10), Some(0)));
    let rejects = job["rejects"].as_array().unwrap();
    assert_eq!(rejects.len(), REJECTS.len(), "{job}");
    for (r, (row, column, words)) in rejects.iter().zip(REJECTS) {
        assert_eq!((r["row"].as_u64(), r["column"].as_str()), (Some(row), Some(column)), "{r}");
        assert!(r["reason"].as_str().unwrap().contains(words), "{r}");
    }
    // No cell of the file is repeated in the job (a cell may be personal data).
    let text = job.to_string();
    for cell in ["example.org", "07700", "High Street", "T-000", "parish"] {
        assert!(!text.contains(cell), "{cell} in {text}");
    }
    assert_eq!(app.log_size().await, before + 10);

    // What the rows said is what the rules now answer, by any of the addresses as written.
    assert!(permitted(&app, &[("email", "jane.doe@example.org"), ("purpose", "newsletter")]).await.0);
    assert_eq!(
        permitted(&app, &[("phone", "07700 900123"), ("purpose", "events"), ("channel", "sms")]).await,
        (false, "consent_withdrawn".into())
    );
    assert!(permitted(&app, &[("subject", "T-0002"), ("purpose", "newsletter"), ("channel", "post")]).await.0);
    assert!(permitted(&app, &[("phone", "+447700900456"), ("purpose", "events"), ("channel", "sms")]).await.0);
    assert!(permitted(&app, &[("email", "erin@example.org"), ("purpose", "events")]).await.0);
    assert!(!permitted(&app, &[("email", "grace@example.org"), ("purpose", "newsletter")]).await.0);
    // Refused rows recorded nothing.
    assert!(!permitted(&app, &[("email", "bob@example.org"), ("purpose", "newsletter")]).await.0);

    // The events keep when and how the original was given; the import is the default method.
    let history: Value = app.history(&app.audit, "T-0001").await.json().await.unwrap();
    let events: Vec<&Value> = history["events"].as_array().unwrap().iter().map(|r| &r["event"]).collect();
    let answers: Vec<&&Value> = events.iter().filter(|e| e["type"] != "contact.linked").collect();
    assert_eq!(answers.len(), 2, "{history}");
    assert_eq!(answers[0]["occurred_at"], "2016-03-01T00:00:00.000000Z");
    assert_eq!(answers[0]["method"], "paper_form");
    assert_eq!(answers[0]["evidence"]["ref"], "F-1001");
    // 2 April 2016 in UK summer time.
    assert_eq!(answers[1]["occurred_at"], "2016-04-01T23:00:00.000000Z");
    assert_eq!(answers[1]["method"], "import");
    let key_id = app.record.strip_prefix("clk_").unwrap().split('_').next().unwrap();
    assert!(events.iter().all(|e| e["recorded_by"] == format!("apikey:{key_id}")), "{history}");
    assert_eq!(events.iter().filter(|e| e["type"] == "contact.linked").count(), 2, "each address linked once");

    // The same file again records nothing.
    let again = import(&app, csv, &mapping, &[]).await;
    assert_eq!(
        (again["counts"]["events_new"].as_u64(), again["counts"]["events_existing"].as_u64()),
        (Some(0), Some(10))
    );
    assert_eq!(app.log_size().await, before + 10);
}

#[tokio::test]
async fn an_upload_that_cannot_be_imported_is_refused_before_anything_runs() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let csv = std::fs::read(FIXTURE).unwrap();
    let before = app.log_size().await;
    let wrong = "[columns]\nsubject = \"Tenancy\"\nemail = \"Email\"\n";
    let p = assert_problem(upload(&app, csv.clone(), wrong, &[]).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("columns.subject"), "{p}");
    // A fixed purpose the catalogue lacks would refuse every row: refused at once instead.
    let unknown = "[columns]\nemail = \"Email\"\nanswer = \"Consent\"\n[fixed]\npurpose = \"parish-magazine\"\n";
    let p = assert_problem(upload(&app, csv.clone(), unknown, &[]).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("fixed.purpose"), "{p}");
    let p = assert_problem(upload(&app, csv.clone(), "columns = 3", &[]).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("mapping"), "{p}");
    let not_a_form =
        app.client.post(app.url("/v1/imports")).bearer_auth(&app.record).body("a,b\n1,2\n").send().await.unwrap();
    assert_problem(not_a_form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let no_file = Form::new().text("mapping", wrong);
    let resp =
        app.client.post(app.url("/v1/imports")).bearer_auth(&app.record).multipart(no_file).send().await.unwrap();
    assert_problem(resp, StatusCode::BAD_REQUEST).await;
    let checker = app.client.post(app.url("/v1/imports")).bearer_auth(&app.check).multipart(Form::new()).send().await;
    assert_problem(checker.unwrap(), StatusCode::FORBIDDEN).await;
    // Another controller's job is not found.
    let job = upload(&app, csv, &std::fs::read_to_string(MAPPING).unwrap(), &[("dry_run", "true")]).await;
    let id = job.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let theirs = app.client.get(app.url(&format!("/v1/imports/{id}"))).bearer_auth(&app.other).send().await.unwrap();
    assert_problem(theirs, StatusCode::NOT_FOUND).await;
    assert_eq!(app.log_size().await, before);
}

#[tokio::test]
async fn a_suppression_list_denies_marketing_to_its_addresses_and_nothing_else() {
    let app = spawn_app().await;
    app.with_purposes().await;
    for who in ["ann@example.org", "ben@example.org"] {
        app.record(json!({"type": "consent.granted", "contact": {"channel": "email", "address": who},
                          "purpose": "newsletter", "actor": {"kind": "subject"}}))
            .await;
    }
    app.record(json!({"type": "consent.granted", "contact": {"channel": "sms", "address": "+447700900777"},
                      "purpose": "newsletter", "actor": {"kind": "subject"}}))
        .await;
    // A previous system's unsubscribe list, as a file: national phone numbers, a bad row.
    let csv = "Address,Phone,Unsubscribed on\r\nANN@example.org,,01/02/2020\r\n,07700 900777,02/02/2020\r\nnot-an-address,,\r\n";
    let mapping =
        "source = \"old-crm\"\n[columns]\nemail = \"Address\"\nphone = \"Phone\"\ndate = \"Unsubscribed on\"\n";
    let job = import(&app, csv.as_bytes().to_vec(), mapping, &[("mode", "suppressions")]).await;
    assert_eq!((job["counts"]["events_new"].as_u64(), job["counts"]["rejected"].as_u64()), (Some(2), Some(1)), "{job}");
    assert_eq!(
        permitted(&app, &[("email", "ann@example.org"), ("purpose", "newsletter")]).await,
        (false, "marketing_objection".into())
    );
    assert!(!permitted(&app, &[("phone", "+447700900777"), ("purpose", "newsletter"), ("channel", "sms")]).await.0);
    assert!(permitted(&app, &[("email", "ben@example.org"), ("purpose", "newsletter")]).await.0);
    // Service messages are not marketing: still permitted.
    assert!(permitted(&app, &[("email", "ann@example.org"), ("purpose", "repairs-updates")]).await.0);

    // By API: all or nothing, and sent again it records nothing.
    let list =
        json!({"source": "complaints", "channel": "email", "addresses": ["ben@example.org", "Ben@Example.org "]});
    let post = |body: Value| app.client.post(app.url("/v1/suppressions")).bearer_auth(&app.record).json(&body).send();
    let p = assert_problem(post(bad_list()).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().starts_with("address 1:"), "{p}");
    assert!(!p.to_string().contains("nope"));
    let future = json!({"source": "complaints", "channel": "email", "addresses": ["ben@example.org"], "occurred_at": "2099-01-01"});
    let p = assert_problem(post(future).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["detail"], "occurred_at is in the future");
    let done: Value = post(list.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(done, json!({"recorded": 1, "already": 0}));
    let again: Value = post(list).await.unwrap().json().await.unwrap();
    assert_eq!(again, json!({"recorded": 0, "already": 1}));
    assert!(!permitted(&app, &[("email", "ben@example.org"), ("purpose", "newsletter")]).await.0);
    let checker = app.client.post(app.url("/v1/suppressions")).bearer_auth(&app.check).json(&bad_list()).send();
    assert_problem(checker.await.unwrap(), StatusCode::FORBIDDEN).await;
}

fn bad_list() -> Value {
    json!({"source": "complaints", "channel": "email", "addresses": ["cat@example.org", "nope"]})
}

/// The command on a stopped ledger: progress, a summary, a rejects file without personal
/// data, exit status 2 while rows were refused, and a rerun that records nothing.
#[tokio::test]
async fn the_import_command_writes_a_rejects_file_and_a_rerun_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let admin = new_keys(dir.path(), "council", &[Role::Admin, Role::Check]);
    let client = reqwest::Client::new();
    for (id, body) in [("newsletter", lasting_newsletter()), ("events", events_purpose())] {
        let r = client.put(format!("{}/v1/purposes/{id}", server.address)).bearer_auth(&admin).json(&body).send();
        assert_eq!(r.await.unwrap().status(), StatusCode::OK);
    }
    server.stop();
    let rejects = dir.path().join("rejects.csv");
    let run = |dry: bool| {
        let mut cmd = bin();
        cmd.args(["import", "--controller", "council", "--file", FIXTURE, "--mapping", MAPPING, "--data-dir"])
            .arg(dir.path())
            .arg("--rejects")
            .arg(&rejects);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.output().unwrap()
    };
    let dry = run(true);
    assert_eq!(dry.status.code(), Some(2), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would record 10 events"), "{dry:?}");
    let first = run(false);
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(2), "{out}");
    assert!(out.contains("13 rows") && out.contains("recorded 10 events; 0 were in the log already"), "{out}");
    assert!(out.contains("1 repeated rows, 7 rejected"), "{out}");
    let listed = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[0], "row,column,reason");
    assert_eq!(lines.len(), 1 + REJECTS.len(), "{listed}");
    for (line, (row, column, words)) in lines[1..].iter().zip(REJECTS) {
        assert!(line.starts_with(&format!("{row},{column},")) && line.contains(words), "{line}");
    }
    for cell in ["example.org", "07700", "High Street", "T-000"] {
        assert!(!listed.contains(cell), "{cell} in {listed}");
    }
    let second = run(false);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("recorded 0 events; 10 were in the log already"), "{out}");

    // The served ledger holds the imported answers.
    let server = start_server(dir.path());
    let jane = client
        .get(format!("{}/v1/check?email=jane.doe@example.org&purpose=newsletter", server.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(jane["permitted"], true, "{jane}");
    let mut server = server;
    server.stop();
}

/// Retention lists exactly the subjects whose time is up and erases them once; their
/// addresses stay suppressed.
#[tokio::test]
async fn retention_lists_and_erases_exactly_the_subjects_whose_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let key = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Audit, Role::Check]);
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.address);
    let mut one_year = lasting_newsletter();
    one_year["retention"] = json!({"years": 1});
    let mut tenancy = repairs();
    tenancy["retention"] = json!({"years": 6});
    let research = json!({"title": "Research", "basis": "consent", "marketing": false, "channels": ["email"]});
    for (id, body) in [("newsletter", one_year), ("tenancy", tenancy), ("research", research)] {
        let r = client.put(url(&format!("/v1/purposes/{id}"))).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    let record = |body: Value| {
        let client = client.clone();
        let (url, key) = (url("/v1/events"), key.clone());
        async move {
            let r = client.post(url).bearer_auth(key).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        }
    };
    let person = json!({"kind": "staff", "id": "officer-1"});
    let event = |kind: &str, subject: &str, at: &str| json!({"type": kind, "subject": subject, "occurred_at": at, "actor": person});
    let consent = |subject: &str, purpose: &str| {
        json!({"type": "consent.granted", "subject": subject, "purpose": purpose,
               "occurred_at": "2014-01-01T00:00:00Z", "actor": person})
    };
    // a: newsletter (1 year), left in 2016: due. b: left this year: not yet. c: left and came
    // back. d: a purpose without a rule keeps the record. e: names no purpose: the longest
    // rule of the catalogue (6 years), left in 2019: due.
    record(consent("a", "newsletter")).await;
    record(json!({"type": "contact.linked", "subject": "a", "contact": {"channel": "email", "address": "a@example.org"}, "actor": person})).await;
    record(event("relationship.ended", "a", "2016-01-01T00:00:00Z")).await;
    record(consent("b", "newsletter")).await;
    record(event("relationship.ended", "b", "2026-06-01T00:00:00Z")).await;
    record(consent("c", "newsletter")).await;
    record(event("relationship.ended", "c", "2015-01-01T00:00:00Z")).await;
    record(event("relationship.started", "c", "2017-01-01T00:00:00Z")).await;
    record(consent("d", "newsletter")).await;
    record(consent("d", "research")).await;
    record(event("relationship.ended", "d", "2015-01-01T00:00:00Z")).await;
    record(json!({"type": "contact.linked", "subject": "e", "contact": {"channel": "email", "address": "e@example.org"}, "actor": person})).await;
    record(event("relationship.ended", "e", "2019-01-01T00:00:00Z")).await;
    // A relationship.ended takes no purpose.
    let r = client
        .post(url("/v1/events"))
        .bearer_auth(&key)
        .json(&json!({"type": "relationship.ended", "subject": "f", "purpose": "newsletter", "actor": person}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let due: Value = client.get(url("/v1/retention/due")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let subjects: Vec<&str> = due["due"].as_array().unwrap().iter().map(|d| d["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["a", "e"], "{due}");
    assert_eq!(due["due"][0]["due_at"], "2017-01-01T00:00:00Z");
    assert_eq!(due["due"][1]["due_at"], "2025-01-01T00:00:00Z");
    server.stop();

    let retention = |args: &[&str]| {
        let out = bin()
            .arg("retention")
            .args(args)
            .args(["--controller", "council", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = retention(&["due"]);
    assert!(listed.contains("2 subject(s) due for erasure"), "{listed}");
    let dry = retention(&["apply", "--dry-run"]);
    assert!(dry.contains("2 subject(s) due for erasure"), "{dry}");
    let applied = retention(&["apply"]);
    assert!(
        applied.contains("erased a ") && applied.contains("erased e ") && applied.contains("2 subject(s) erased"),
        "{applied}"
    );
    assert!(retention(&["apply"]).contains("0 subject(s) erased"));

    let server = start_server(dir.path());
    let check = |q: &str| {
        let (client, url, key) = (client.clone(), format!("{}/v1/check?{q}", server.address), key.clone());
        async move { client.get(url).bearer_auth(key).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(check("subject=a&purpose=newsletter").await["reason"], "subject_erased");
    // Their addresses stay suppressed, for every purpose.
    assert_eq!(check("email=a@example.org&purpose=newsletter").await["permitted"], false);
    assert_eq!(check("email=e@example.org&purpose=tenancy").await["permitted"], false);
    assert_eq!(check("subject=b&purpose=newsletter").await["permitted"], true);
    let mut server = server;
    server.stop();
}
