//! The preference page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `.ci/setup` installs), driven over W3C WebDriver, with JavaScript
//! turned off in the browser and a 360 px wide window: a tenant opens their link, turns the
//! newsletter on by email and off by text message, saves, sees the confirmation, and the API
//! agrees; "stop all marketing" stops every marketing check; tampered and expired links show
//! the error page; a STOP texted from the person's phone shows as "no" with why, and "Yes"
//! saved in the browser lets the number be texted again. Screenshots are kept under `target/tmp/browser/` (or `$BROWSER_ARTEFACTS`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use consent_ledger::domain::{ControllerId, SubjectId};
use consent_ledger::service::PreferenceToken;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, staff, TestApp};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WIDTH: u64 = 360;

fn artefacts() -> PathBuf {
    let dir = std::env::var_os("BROWSER_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser"));
    std::fs::create_dir_all(&dir).expect("artefacts dir");
    dir
}

/// A ChromeDriver process and one browser session; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the browser test needs Debian's chromium and chromium-driver: run .ci/setup (it installs them)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        // No WebDriver call may hang the test run.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true) {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={WIDTH},900"),
                ],
                // The page must work with no JavaScript at all.
                "prefs": {"profile.managed_default_content_settings.javascript": 2}
            }
        }}});
        let resp: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = resp["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {resp}")).to_owned();
        let browser = Browser { driver, base, session, http, _profile: profile };
        // A phone-sized viewport (a desktop window cannot be narrower than 500 px).
        let metrics = json!({"width": WIDTH, "height": 800, "deviceScaleFactor": 1, "mobile": true});
        browser
            .call(
                Method::POST,
                "/goog/cdp/execute",
                Some(json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics})),
            )
            .await;
        browser
    }

    /// A phone-sized viewport (a desktop window cannot be narrower than 500 px).
    async fn viewport(&self, width: u64) {
        let metrics = json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": true});
        self.cdp("Emulation.setDeviceMetricsOverride", metrics).await;
    }

    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(Method::POST, "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params}))).await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn title(&self) -> String {
        self.call(Method::GET, "/title", None).await.as_str().unwrap().to_owned()
    }

    /// Waits (up to 20 s) for a navigation a click started to land on a page titled `want`.
    async fn wait_for_title(&self, want: &str) {
        let mut seen = String::new();
        for _ in 0..200 {
            seen = self.title().await;
            if seen == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected the page {want:?}, still on {seen:?}");
    }

    async fn source(&self) -> String {
        self.call(Method::GET, "/source", None).await.as_str().unwrap().to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let v = self.call(Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.call(Method::GET, &format!("/element/{element}/attribute/{name}"), None).await.as_str().map(str::to_owned)
    }

    async fn selected(&self, element: &str) -> bool {
        self.call(Method::GET, &format!("/element/{element}/selected"), None).await == true
    }

    async fn click(&self, element: &str) {
        self.call(Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    async fn rect(&self, element: &str) -> Value {
        self.call(Method::GET, &format!("/element/{element}/rect"), None).await
    }

    /// Clicks the label tied to the radio `name`=`value` (so the label is what works).
    async fn choose(&self, name: &str, value: &str) {
        let input = self.find(&format!("input[name=\"{name}\"][value=\"{value}\"]")).await;
        let id = self.attribute(&input, "id").await.expect("radio has an id");
        let label = self.find(&format!("label[for=\"{id}\"]")).await;
        self.click(&label).await;
        assert!(self.selected(&input).await, "clicking the label of {name}={value} selects it");
    }

    /// A screenshot of the whole page, not just the viewport.
    async fn screenshot(&self, name: &str) {
        let png = self.cdp("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true})).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png["data"].as_str().unwrap()).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::write(artefacts().join(format!("{name}.png")), bytes).unwrap();
    }

    /// The page fits the window: nothing of `css` reaches past its right edge.
    async fn fits(&self, css: &str, width: u64) {
        let element = self.find(css).await;
        let r = self.rect(&element).await;
        let right = r["x"].as_f64().unwrap() + r["width"].as_f64().unwrap();
        assert!(right <= width as f64 + 0.5, "{css} reaches {right}px in a {width}px viewport");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = blocking_delete(&format!("{}/session/{}", self.base, self.session));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A DELETE without a runtime (Drop cannot await): a raw HTTP/1.1 request.
fn blocking_delete(url: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    Ok(())
}

async fn subject_permitted(app: &TestApp, purpose: &str, channel: &str) -> bool {
    app.check(&[("subject", "T-1"), ("purpose", purpose), ("channel", channel)]).await["permitted"] == true
}

#[tokio::test]
async fn a_tenant_changes_their_preferences_in_a_real_browser() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let events = json!({"title": "Events near you", "description": "Notices of community events.",
        "basis": "consent", "marketing": true, "channels": ["email", "sms", "post"]});
    assert_eq!(app.put_purpose(&app.admin, "events", &events).await.status(), 200);
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "channel": "sms",
        "method": "paper_form", "actor": staff()}))
        .await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "events", "actor": staff()})).await;
    let url = app.preference_link("T-1").await;
    let browser = Browser::start().await;

    // JavaScript is really off: a page whose script would retitle it keeps its own title.
    browser.goto("data:text/html,<title>no script ran</title><script>document.title='script ran'</script>").await;
    assert_eq!(browser.title().await, "no script ran");

    browser.goto(&url).await;
    assert_eq!(browser.title().await, "Your contact preferences");
    browser.screenshot("01-preferences-360px").await;
    browser.fits("main", WIDTH).await;
    browser.fits("button[value=\"save\"]", WIDTH).await;
    browser.fits("select#language", WIDTH).await;
    // WCAG reflow: 320 CSS px (a 1280 px screen at 400% zoom) needs no sideways scrolling.
    browser.viewport(320).await;
    browser.fits("main", 320).await;
    browser.fits("button[value=\"stop-marketing\"]", 320).await;
    browser.screenshot("01b-preferences-320px-reflow").await;
    browser.viewport(WIDTH).await;

    // Newsletter: on by email, off by text message.
    browser.choose("newsletter/email", "yes").await;
    browser.choose("newsletter/sms", "no").await;
    browser.choose("format", "large_print").await;
    let save = browser.find("button[value=\"save\"]").await;
    browser.click(&save).await;
    browser.wait_for_title("Your choices are saved").await;
    let done = browser.source().await;
    assert!(done.contains("Yes to “The Voice newsletter” by email"), "{done}");
    assert!(done.contains("No to “The Voice newsletter” by text message"));
    assert!(done.contains("Format: Large print"));
    browser.screenshot("02-confirmation-360px").await;
    assert!(subject_permitted(&app, "newsletter", "email").await);
    assert!(!subject_permitted(&app, "newsletter", "sms").await);

    // A receipt, in words, from the confirmation.
    let receipt = browser.find("ul.changes a").await;
    browser.click(&receipt).await;
    browser.wait_for_title("Receipt").await;
    assert!(browser.source().await.contains("On the web page, by you"));
    browser.screenshot("03-receipt-360px").await;

    // Stop all marketing, in one step.
    browser.goto(&url).await;
    let stop = browser.find("button[value=\"stop-marketing\"]").await;
    browser.click(&stop).await;
    browser.wait_for_title("Your choices are saved").await;
    for (purpose, channel) in
        [("newsletter", "email"), ("newsletter", "post"), ("newsletter", "sms"), ("events", "email"), ("events", "sms")]
    {
        assert!(!subject_permitted(&app, purpose, channel).await, "{purpose} by {channel} after stop all marketing");
    }
    assert!(subject_permitted(&app, "repairs-updates", "sms").await, "service messages still go");
    browser.goto(&url).await;
    assert!(browser.source().await.contains("You asked us to stop all marketing"));
    browser.screenshot("04-marketing-stopped-360px").await;

    // Tampered and expired links.
    let token = url.rsplit('/').next().unwrap();
    browser.goto(&app.url(&format!("/p/{}x", token))).await;
    assert_eq!(browser.title().await, "This link is not valid");
    browser.screenshot("05-tampered-link").await;
    let past = Utc::now().timestamp() - 1;
    let expired = app.preference_token(&PreferenceToken {
        c: ControllerId::parse("council").unwrap(),
        s: SubjectId::parse("T-1").unwrap(),
        x: past,
        t: past - 3600,
    });
    browser.goto(&app.url(&format!("/p/{expired}"))).await;
    assert_eq!(browser.title().await, "This link has expired");
    browser.screenshot("06-expired-link").await;
}

#[tokio::test]
async fn a_stop_texted_shows_on_the_page_and_yes_in_the_browser_restores_it() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    app.record(json!({"type": "contact.linked", "subject": "T-1",
        "contact": {"channel": "sms", "address": "+447700900123"}, "actor": staff()}))
        .await;
    crate::addresses::text_stop(&app).await;
    let by_phone = [("phone", "+447700900123"), ("purpose", "newsletter"), ("channel", "sms")];
    assert_eq!(app.check(&by_phone).await["permitted"], false);

    let url = app.preference_link("T-1").await;
    let browser = Browser::start().await;
    browser.goto(&url).await;
    let no = browser.find("input[name=\"newsletter/sms\"][value=\"no\"]").await;
    assert!(browser.selected(&no).await, "the STOP shows as no");
    let source = browser.source().await;
    assert!(source.contains("STOP was texted from it") && source.contains("by a text message STOP"), "{source}");
    // The note is tied to the question, for screen readers.
    let fieldset = browser.find("fieldset[aria-describedby]").await;
    let described = browser.attribute(&fieldset, "aria-describedby").await.unwrap();
    assert!(browser.source().await.contains(&format!("id=\"{described}\"")));
    browser.screenshot("07-stopped-by-text-360px").await;

    browser.choose("newsletter/sms", "yes").await;
    let save = browser.find("button[value=\"save\"]").await;
    browser.click(&save).await;
    browser.wait_for_title("Your choices are saved").await;
    assert!(browser.source().await.contains("Marketing allowed again by text message"));
    assert_eq!(app.check(&by_phone).await["permitted"], true, "the number may be texted again");
    browser.goto(&url).await;
    let yes = browser.find("input[name=\"newsletter/sms\"][value=\"yes\"]").await;
    assert!(browser.selected(&yes).await);
}
