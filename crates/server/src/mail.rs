//! Outgoing e-mail over SMTP (SPEC §2 `--smtp-url`, `--smtp-from`): a typed message — who to,
//! the subject, a plain-text part, an optional HTML part with inline images referenced by
//! `cid:`, attachments — and a [`Mailer`] that sends it with lettre over rustls. Nothing here
//! knows about schedules or alerts; they build an [`OutgoingEmail`] and call [`Mailer::send`].
//!
//! The URL decides the transport security:
//! - `smtps://host[:465]`: TLS from the first byte;
//! - `smtp://host[:25]`: STARTTLS when the server offers it, plain otherwise (SPEC §2);
//! - `smtp://host?tls=starttls`: STARTTLS required (refuses a server that does not offer it);
//! - `smtp://host?tls=none`: never TLS (a relay on the same host, the tests' server).
//!
//! `user:password@` in the URL (percent-encoded) authenticates.

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP exchange may take before the send fails (and its job retries).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A file attached to a message.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `application/pdf` or `text/csv; charset=utf-8`.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// An image the HTML part shows with `<img src="cid:{cid}">`.
#[derive(Debug, Clone)]
pub struct InlineImage {
    pub cid: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct OutgoingEmail {
    pub to: Vec<String>,
    pub subject: String,
    /// Always sent: the whole message for text-only readers.
    pub text: String,
    pub html: Option<String>,
    /// Shown by the HTML part; ignored without one.
    pub inline_images: Vec<InlineImage>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server's configuration (`--smtp-url`, `--smtp-from`) is wrong; names the flag.
    #[error("{0}")]
    Config(String),
    /// The message itself cannot be built (a bad address, content type …).
    #[error("{0}")]
    Message(String),
    /// The SMTP server could not be reached or refused the message.
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// Sends e-mail through one SMTP server as one sender. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The URL without its password, for logs and errors.
    shown: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.shown)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// A mailer for `--smtp-url` and `--smtp-from`; errors name the flag.
    pub fn new(smtp_url: &str, from: &str) -> Result<Mailer, MailError> {
        let flag = |e: String| MailError::Config(format!("--smtp-url: {e}"));
        let url = url::Url::parse(smtp_url).map_err(|e| flag(e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| flag("names no host".into()))?
            .trim_matches(['[', ']'])
            .to_string();
        let tls_mode = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.to_string());
        let tls = |host: &str| TlsParameters::new(host.to_string()).map_err(|e| flag(e.to_string()));
        let (default_port, security) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtps", None | Some("tls")) => (465, Tls::Wrapper(tls(&host)?)),
            ("smtp", None) => (25, Tls::Opportunistic(tls(&host)?)),
            ("smtp", Some("starttls")) => (587, Tls::Required(tls(&host)?)),
            ("smtp", Some("none")) => (25, Tls::None),
            ("smtp" | "smtps", Some(other)) => {
                return Err(flag(format!("tls={other} is not one of starttls, none")));
            }
            (scheme, _) => return Err(flag(format!("the scheme is '{scheme}', not smtp or smtps"))),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(url.port().unwrap_or(default_port))
            .tls(security)
            .timeout(Some(SMTP_TIMEOUT));
        if !url.username().is_empty() {
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| flag("the user or password is not valid percent-encoding".into()))
            };
            let user = decode(url.username())?;
            let password = decode(url.password().unwrap_or(""))?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Config(format!("--smtp-from: '{from}' is not an e-mail address ({e})")))?;
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        Ok(Mailer {
            transport: builder.build(),
            from,
            shown: shown.to_string(),
        })
    }

    pub fn from_address(&self) -> &str {
        self.from.email.as_ref()
    }

    /// Sends a notice nobody waits on (an alert, a retention notice): what it is about is
    /// already recorded elsewhere, so a failure is logged as `what`, not returned.
    pub async fn notify(mailer: Option<&Mailer>, email: &OutgoingEmail, what: &str) {
        let to = email.to.join(", ");
        let Some(mailer) = mailer else {
            tracing::warn!(%to, "{what} not e-mailed: no --smtp-url configured");
            return;
        };
        if let Err(e) = mailer.send(email).await {
            tracing::warn!(%to, error = %e, "{what} not e-mailed");
        }
    }

    /// Sends one message; `Ok` with its size in bytes once the server accepted it.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<usize, MailError> {
        let message = self.build(email)?;
        let size = message.formatted().len();
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Smtp(format!("{}: {e}", self.shown)))?;
        Ok(size)
    }

    /// The MIME message: mixed [ alternative [ text, related [ html, images… ] ], attachments… ].
    fn build(&self, email: &OutgoingEmail) -> Result<Message, MailError> {
        if email.to.is_empty() {
            return Err(MailError::Message("a message needs at least one recipient".into()));
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.as_str());
        for to in &email.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| MailError::Message(format!("'{to}' is not an e-mail address ({e})")))?;
            builder = builder.to(mailbox);
        }
        let content_type = |t: &str| {
            ContentType::parse(t).map_err(|e| MailError::Message(format!("'{t}' is not a content type ({e})")))
        };
        let text = SinglePart::plain(email.text.clone());
        let body = match &email.html {
            None => MultiPart::alternative().singlepart(text),
            Some(html) => {
                let mut related = MultiPart::related().singlepart(SinglePart::html(html.clone()));
                for image in &email.inline_images {
                    related = related.singlepart(
                        MimeAttachment::new_inline(image.cid.clone())
                            .body(image.data.clone(), content_type(&image.content_type)?),
                    );
                }
                MultiPart::alternative().singlepart(text).multipart(related)
            }
        };
        let mut mixed = MultiPart::mixed().multipart(body);
        for file in &email.attachments {
            mixed = mixed.singlepart(
                MimeAttachment::new(file.filename.clone()).body(file.data.clone(), content_type(&file.content_type)?),
            );
        }
        builder.multipart(mixed).map_err(|e| MailError::Message(e.to_string()))
    }
}

/// `%XX` sequences decoded as UTF-8 (the URL crate leaves user and password encoded).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_chooses_port_security_and_credentials_and_errors_name_the_flag() {
        let m = Mailer::new(
            "smtps://me%40x.org:p%3Ass@mail.example.com",
            "Board <board@example.com>",
        )
        .unwrap();
        assert_eq!(m.from_address(), "board@example.com");
        assert!(!format!("{m:?}").contains("p%3Ass"), "the password stays out of logs");
        for ok in [
            "smtp://localhost:2525?tls=none",
            "smtp://localhost?tls=starttls",
            "smtp://[::1]:25",
        ] {
            Mailer::new(ok, "a@b.c").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("http://x", "--smtp-url: the scheme is 'http'"),
            ("smtp://x?tls=maybe", "--smtp-url: tls=maybe"),
            ("smtp://", "--smtp-url"),
            ("smtp://x%zz:y@host", "--smtp-url: the user"),
        ] {
            let e = Mailer::new(bad, "a@b.c").unwrap_err().to_string();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
        let e = Mailer::new("smtp://x", "not an address").unwrap_err().to_string();
        assert!(e.starts_with("--smtp-from"), "{e}");
    }

    #[test]
    fn a_message_has_text_beside_html_with_its_images_and_attachments() {
        let m = Mailer::new("smtp://localhost?tls=none", "board@example.com").unwrap();
        let email = OutgoingEmail {
            to: vec!["rep@example.com".into()],
            subject: "Scorecard".into(),
            text: "Calls: 12".into(),
            html: Some("<p>Calls: 12</p><img src=\"cid:chart\">".into()),
            inline_images: vec![InlineImage {
                cid: "chart".into(),
                content_type: "image/png".into(),
                data: vec![0x89, b'P', b'N', b'G'],
            }],
            attachments: vec![Attachment {
                filename: "scorecard.csv".into(),
                content_type: "text/csv; charset=utf-8".into(),
                data: b"calls\n12\n".to_vec(),
            }],
        };
        let text = String::from_utf8(m.build(&email).unwrap().formatted()).unwrap();
        for part in [
            "multipart/mixed",
            "multipart/alternative",
            "multipart/related",
            "text/plain",
            "text/html",
            "Content-ID: <chart>",
            "filename=\"scorecard.csv\"",
        ] {
            assert!(text.contains(part), "{part} missing in\n{text}");
        }
        let none = OutgoingEmail { to: vec![], ..email };
        assert!(m.build(&none).is_err());
    }
}
