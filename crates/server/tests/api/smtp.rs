//! A real SMTP server for the tests: aiosmtpd (tests/smtp/sink.py) on a free loopback port,
//! writing every message it receives to a directory, parsed there by Python's `email` package
//! into a JSON record and one file per MIME part. Its Python comes from `DIALBOARD_MAIL_PYTHON`
//! or a venv at the repository's root (`.venv-mail`) made from PyPI when missing.

use dialboard::mail::{Attachment, InlineImage, Mailer, OutgoingEmail};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// One received message: its JSON record (envelope, headers, parts) and the parts' bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub record: Value,
}

impl Received {
    pub fn subject(&self) -> &str {
        self.record["subject"].as_str().unwrap_or("")
    }

    pub fn recipients(&self) -> Vec<String> {
        self.record["rcpt_tos"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    pub fn content_types(&self) -> Vec<String> {
        self.parts()
            .map(|p| p["content_type"].as_str().unwrap().to_string())
            .collect()
    }

    fn parts(&self) -> impl Iterator<Item = &Value> {
        self.record["parts"].as_array().into_iter().flatten()
    }

    fn read(part: &Value) -> Vec<u8> {
        std::fs::read(part["path"].as_str().expect("a leaf part")).unwrap()
    }

    /// The first leaf part of `content_type` that is not an attachment (the text, the HTML).
    pub fn body(&self, content_type: &str) -> Option<String> {
        self.parts()
            .find(|p| p["content_type"] == content_type && p["disposition"] != "attachment" && p["path"].is_string())
            .map(|p| String::from_utf8(Self::read(p)).unwrap())
    }

    /// The attachment named `filename`: (content type, bytes).
    pub fn attachment(&self, filename: &str) -> Option<(String, Vec<u8>)> {
        self.parts()
            .find(|p| p["filename"] == filename && p["disposition"] == "attachment")
            .map(|p| (p["content_type"].as_str().unwrap().to_string(), Self::read(p)))
    }

    /// The inline part whose Content-ID is `cid`: (content type, bytes).
    pub fn inline(&self, cid: &str) -> Option<(String, Vec<u8>)> {
        self.parts()
            .find(|p| p["content_id"] == cid)
            .map(|p| (p["content_type"].as_str().unwrap().to_string(), Self::read(p)))
    }
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        Self::launch(None, None)
    }

    /// A server that holds each message `hold` after its data arrived before accepting it
    /// (a client killed meanwhile never gets its 250 and the message is not kept).
    pub async fn start_holding(hold: Duration) -> SmtpSink {
        Self::launch(None, Some(hold))
    }

    /// A server that requires AUTH with these credentials.
    pub async fn start_with_login(user: &str, password: &str) -> SmtpSink {
        Self::launch(Some((user, password)), None)
    }

    fn launch(login: Option<(&str, &str)>, hold: Option<Duration>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(python());
        command
            .arg(sink_script())
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped());
        if let Some(hold) = hold {
            command.env("SINK_HOLD_SECONDS", hold.as_secs_f64().to_string());
        }
        if let Some((user, password)) = login {
            command.args([user, password]);
        }
        let mut child = command.spawn().expect("start the SMTP sink");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        SmtpSink { port, dir, child }
    }

    /// `--smtp-url` for this server (plain SMTP: it offers no STARTTLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// How many messages' data arrived so far, accepted or still held (a holding server).
    pub fn held(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|e| e == "held"))
            .count()
    }

    /// Every message received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| Received {
                record: serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap(),
            })
            .collect()
    }

    /// Waits until `n` messages arrived (at most 20 s), then returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n || start.elapsed() > Duration::from_secs(20) {
                assert!(got.len() >= n, "expected {n} messages, received {}", got.len());
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py")
}

/// The Python that has aiosmtpd: `DIALBOARD_MAIL_PYTHON`, or `.venv-mail` at the repository's
/// root, made from PyPI when it is missing (as .ci/run does).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DIALBOARD_MAIL_PYTHON") {
        return p.into();
    }
    static MADE: std::sync::Once = std::sync::Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".venv-mail/bin/python");
    MADE.call_once(|| {
        let ready = Command::new(&venv)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        for (program, args) in [
            (PathBuf::from("python3"), vec!["-m", "venv", ".venv-mail"]),
            (venv.clone(), vec!["-m", "pip", "install", "-q", "aiosmtpd"]),
        ] {
            let status = Command::new(&program).args(&args).current_dir(&root).status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "{} {args:?} failed ({status:?}): python3-venv and PyPI are needed",
                program.display()
            );
        }
    });
    venv
}

#[tokio::test]
async fn a_message_arrives_with_text_html_inline_image_and_a_readable_attachment() {
    let sink = SmtpSink::start_with_login("board", "s3cret:/@").await;
    let url = format!("smtp://board:s3cret%3A%2F%40@127.0.0.1:{}?tls=none", sink.port);
    let mailer = Mailer::new(&url, "Dialboard <board@example.com>").unwrap();
    let png = vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10];
    let email = OutgoingEmail {
        to: vec!["rep@example.com".into(), "lead@example.com".into()],
        subject: "Weekly scorecard — Ünïcode".into(),
        text: "Calls: 12\nOpen: https://board.example.com/reports/1".into(),
        html: Some("<p>Calls: <b>12</b></p><img src=\"cid:chart\">".into()),
        inline_images: vec![InlineImage {
            cid: "chart".into(),
            content_type: "image/png".into(),
            data: png.clone(),
        }],
        attachments: vec![Attachment {
            filename: "scorecard.csv".into(),
            content_type: "text/csv; charset=utf-8".into(),
            data: "agent,calls\nÅsa,12\n".as_bytes().to_vec(),
        }],
    };
    let size = mailer.send(&email).await.unwrap();
    let got = sink.wait_for(1).await;
    let mail = &got[0];
    assert_eq!(
        mail.record["login"], "board",
        "authenticated with the URL's credentials"
    );
    assert_eq!(mail.record["mail_from"], "board@example.com");
    assert_eq!(mail.recipients(), vec!["rep@example.com", "lead@example.com"]);
    assert_eq!(mail.subject(), "Weekly scorecard — Ünïcode");
    assert!(size > 0 && size.abs_diff(mail.record["size"].as_u64().unwrap() as usize) < 64);
    assert_eq!(
        mail.content_types()[..4],
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "multipart/related"
        ]
    );
    assert!(mail
        .body("text/plain")
        .unwrap()
        .contains("https://board.example.com/reports/1"));
    assert!(mail.body("text/html").unwrap().contains("cid:chart"));
    assert_eq!(mail.inline("chart").unwrap(), ("image/png".to_string(), png));
    let (kind, csv_bytes) = mail.attachment("scorecard.csv").unwrap();
    assert_eq!(kind, "text/csv");
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(&csv_bytes[..])
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows[0].iter().collect::<Vec<_>>(), ["Åsa", "12"]);
}

#[tokio::test]
async fn wrong_credentials_and_an_absent_server_are_errors_not_silence() {
    let sink = SmtpSink::start_with_login("board", "right").await;
    let email = OutgoingEmail {
        to: vec!["rep@example.com".into()],
        subject: "x".into(),
        text: "x".into(),
        ..OutgoingEmail::default()
    };
    let wrong = Mailer::new(&format!("smtp://board:wrong@127.0.0.1:{}?tls=none", sink.port), "a@b.c").unwrap();
    let e = wrong.send(&email).await.unwrap_err().to_string();
    assert!(e.starts_with("SMTP: smtp://board@127.0.0.1"), "{e}");
    assert!(!e.contains("wrong"), "the password stays out of errors: {e}");
    drop(sink);
    let gone = Mailer::new("smtp://127.0.0.1:1?tls=none", "a@b.c").unwrap();
    assert!(gone.send(&email).await.is_err());
}
