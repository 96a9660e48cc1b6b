//! The texts the appliance sends by SMS, from the operator's templates:
//! the pairing invite, its resend, and the escalation of an item nobody
//! saw. Placeholders in braces (`{user_name}`, `{pairing_link}`,
//! `{expiry_minutes}`, `{kind}`, `{title}`, `{item_link}`); the defaults are
//! the original design's texts. A template that would drop its link, names
//! an unknown placeholder, or comes out longer than three SMS segments is
//! refused at start.

use std::time::Duration;

/// The original design's invite text.
pub(crate) const DEFAULT_INVITE: &str =
    "Top Dog: {user_name}, tap to pair this phone with your Top Dog IDE: {pairing_link} \
     (expires in {expiry_minutes} min). If you did not ask for this, ignore this message.";

/// The original design's resend text.
pub(crate) const DEFAULT_RESEND: &str = "(Resent) Top Dog: {user_name}, tap to pair this phone with your Top Dog IDE: \
     {pairing_link} (expires in {expiry_minutes} min). If you did not ask for this, ignore this message.";

/// The escalation text: the kind and title, never a body or a number.
pub(crate) const DEFAULT_ESCALATION: &str = "Top Dog: {kind} waiting for you: {title}. Open {item_link}";

/// Longest text: three concatenated segments.
pub(crate) const MAX_SEGMENTS: usize = 3;

/// Why a template was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SMS template {which}: {reason}")]
pub(crate) struct TemplateError {
    which: &'static str,
    reason: String,
}

/// One template: its text and the placeholders it may use.
#[derive(Debug)]
struct Template {
    which: &'static str,
    text: String,
}

impl Template {
    fn new(which: &'static str, text: String, known: &[&str], link: &str) -> Result<Template, TemplateError> {
        let refuse = |reason: String| TemplateError { which, reason };
        let mut rest = text.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').ok_or_else(|| refuse("a `{` is never closed".into()))?;
            let name = &rest[start + 1..start + end];
            if !known.contains(&name) {
                return Err(refuse(format!("unknown placeholder {{{name}}} (use {})", known.join(", "))));
            }
            rest = &rest[start + end + 1..];
        }
        if !text.contains(&format!("{{{link}}}")) {
            return Err(refuse(format!("must contain {{{link}}}, or the text is of no use")));
        }
        Ok(Template { which, text })
    }

    fn render(&self, values: &[(&str, &str)]) -> String {
        values.iter().fold(self.text.clone(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
    }

    /// Refuses a template whose rendering with `sample` exceeds the
    /// segments.
    fn fits(&self, sample: &[(&str, &str)]) -> Result<(), TemplateError> {
        let n = segments(&self.render(sample));
        if n > MAX_SEGMENTS {
            let reason = format!("comes to {n} SMS segments with typical values; at most {MAX_SEGMENTS}");
            return Err(TemplateError { which: self.which, reason });
        }
        Ok(())
    }
}

/// How many SMS segments `text` takes: GSM 7-bit (160, or 153 per part)
/// when every character is in the basic set, else UCS-2 (70, or 67).
pub(crate) fn segments(text: &str) -> usize {
    const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENDED: &str = "^{}\\[~]|€";
    let gsm = text.chars().all(|c| GSM.contains(c) || EXTENDED.contains(c));
    let (units, single, part) = if gsm {
        (text.chars().map(|c| if EXTENDED.contains(c) { 2 } else { 1 }).sum::<usize>(), 160, 153)
    } else {
        (text.encode_utf16().count(), 70, 67)
    };
    if units <= single {
        1
    } else {
        units.div_ceil(part)
    }
}

/// The operator's texts.
#[derive(Debug)]
pub(crate) struct Templates {
    invite: Template,
    resend: Template,
    escalation: Template,
}

/// The operator's template texts (None: the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TemplateTexts {
    /// The pairing invite.
    pub invite: Option<String>,
    /// A resent invite.
    pub resend: Option<String>,
    /// An escalation.
    pub escalation: Option<String>,
}

const INVITE_PLACEHOLDERS: [&str; 3] = ["user_name", "pairing_link", "expiry_minutes"];
const ESCALATION_PLACEHOLDERS: [&str; 4] = ["user_name", "kind", "title", "item_link"];

impl Templates {
    /// Checks the operator's texts against typical values for links under
    /// `base_url`.
    pub(crate) fn new(texts: &TemplateTexts, base_url: &str) -> Result<Templates, TemplateError> {
        let text = |t: &Option<String>, default: &str| t.clone().unwrap_or_else(|| default.to_owned());
        let invite =
            Template::new("invite", text(&texts.invite, DEFAULT_INVITE), &INVITE_PLACEHOLDERS, "pairing_link")?;
        let resend =
            Template::new("resend", text(&texts.resend, DEFAULT_RESEND), &INVITE_PLACEHOLDERS, "pairing_link")?;
        let escalation = Template::new(
            "escalation",
            text(&texts.escalation, DEFAULT_ESCALATION),
            &ESCALATION_PLACEHOLDERS,
            "item_link",
        )?;
        let link = format!("{base_url}/pair?code={}", "x".repeat(43));
        let pairing = [("user_name", "Alexandra Example"), ("pairing_link", link.as_str()), ("expiry_minutes", "15")];
        invite.fits(&pairing)?;
        resend.fits(&pairing)?;
        let item = format!("{base_url}/app#approval-{}", "x".repeat(32));
        let title = "Deploy release 1.4.2 to production";
        escalation.fits(&[
            ("user_name", "Alexandra Example"),
            ("kind", "Approval"),
            ("title", title),
            ("item_link", &item),
        ])?;
        Ok(Templates { invite, resend, escalation })
    }

    /// An invite (or its resend) for `user_name` with `link`, valid for
    /// `expires_in`.
    pub(crate) fn invite(&self, resent: bool, user_name: &str, link: &str, expires_in: Duration) -> String {
        let minutes = expires_in.as_secs().div_ceil(60).max(1).to_string();
        let template = if resent { &self.resend } else { &self.invite };
        template.render(&[("user_name", user_name), ("pairing_link", link), ("expiry_minutes", &minutes)])
    }

    /// An escalation of an item (`kind`: "Approval", "Urgent notification")
    /// titled `title`, with a link to it; a long title is cut so the text
    /// stays within [`MAX_SEGMENTS`].
    pub(crate) fn escalation(&self, user_name: &str, kind: &str, title: &str, item_link: &str) -> String {
        let mut title: String = title.chars().take(120).collect();
        loop {
            let values =
                [("user_name", user_name), ("kind", kind), ("title", title.as_str()), ("item_link", item_link)];
            let text = self.escalation.render(&values);
            if segments(&text) <= MAX_SEGMENTS || title.is_empty() {
                return text;
            }
            title.truncate(title.char_indices().nth_back(9).map_or(0, |(i, _)| i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://buildbox.example.com:8443";

    #[test]
    fn the_defaults_are_the_original_texts() {
        let t = Templates::new(&TemplateTexts::default(), BASE).unwrap();
        let text = t.invite(false, "Ann", "https://td/pair?code=x", Duration::from_secs(15 * 60));
        assert!(
            text.starts_with("Top Dog: Ann, tap to pair")
                && text.contains("https://td/pair?code=x (expires in 15 min)")
        );
        assert!(t.invite(true, "Ann", "l", Duration::from_secs(5)).starts_with("(Resent) Top Dog: Ann"));
        assert!(t.invite(false, "A", "l", Duration::from_secs(5)).contains("1 min"));
        let escalated = t.escalation("Ann", "Approval", "Deploy 1.4", "https://td/app#approval-a1");
        assert_eq!(escalated, "Top Dog: Approval waiting for you: Deploy 1.4. Open https://td/app#approval-a1");
    }

    #[test]
    fn templates_that_drop_the_link_name_unknowns_or_run_long_are_refused() {
        let with = |invite: &str| TemplateTexts { invite: Some(invite.into()), ..Default::default() };
        assert!(Templates::new(&with("Pair now, {user_name}!"), BASE).is_err(), "no link");
        assert!(Templates::new(&with("{pairing_link} {body}"), BASE).is_err(), "unknown placeholder");
        assert!(Templates::new(&with("{pairing_link} {user_name"), BASE).is_err(), "unclosed");
        let long = format!("{} {{pairing_link}}", "word ".repeat(100));
        assert!(Templates::new(&with(&long), BASE).unwrap_err().reason.contains("segments"));
        let custom = Templates::new(&with("Hi {user_name}: {pairing_link}"), BASE).unwrap();
        assert_eq!(custom.invite(false, "Bo", "https://l", Duration::from_secs(60)), "Hi Bo: https://l");
        let escalation = TemplateTexts { escalation: Some("{title}".into()), ..Default::default() };
        assert!(Templates::new(&escalation, BASE).is_err(), "an escalation needs its item link");
    }

    #[test]
    fn segments_count_gsm_and_unicode_texts() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(459)), 3);
        assert_eq!(segments(&"€".repeat(80)), 1, "extended characters take two units");
        assert_eq!(segments(&"€".repeat(81)), 2);
        assert_eq!(segments(&"é".repeat(160)), 1, "é is in the GSM set");
        assert_eq!(segments(&"ł".repeat(70)), 1);
        assert_eq!(segments(&"ł".repeat(71)), 2);
    }

    #[test]
    fn a_long_title_is_cut_to_fit() {
        let t = Templates::new(&TemplateTexts::default(), BASE).unwrap();
        let text = t.escalation("Ann", "Approval", &"ł".repeat(300), "https://td/app#approval-a1");
        assert!(segments(&text) <= MAX_SEGMENTS && text.ends_with("https://td/app#approval-a1"), "{text}");
    }
}
