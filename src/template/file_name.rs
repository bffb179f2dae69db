//! What a file under `templates/` is, from its path (DESIGN §3 naming).

use crate::channel::Channel;

/// The role of one file, by its path relative to the templates directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileRole {
    /// `NAME.email.hbs`, `NAME.sms.hbs`, `NAME.push.hbs`, `NAME.webhook.hbs`.
    Message { name: String, channel: Channel },
    /// `NAME.email.txt.hbs`: the plain-text part of the email `NAME`.
    EmailText { name: String },
    /// `partials/NAME.hbs`.
    Partial { name: String },
    /// `layouts/NAME.hbs`.
    Layout { name: String },
    /// Dotfiles and documentation: skipped without a word.
    Ignored,
    /// Anything else: warned about (T005) and skipped.
    Unrecognised { reason: String },
}

const SUFFIXES: &[(&str, Option<Channel>)] = &[
    (".email.txt.hbs", None),
    (".email.hbs", Some(Channel::Email)),
    (".sms.hbs", Some(Channel::Sms)),
    (".push.hbs", Some(Channel::Push)),
    (".webhook.hbs", Some(Channel::Webhook)),
];

/// Classifies `relative`, a path below the templates directory with `/` separators.
pub(crate) fn classify(relative: &str) -> FileRole {
    let file = relative.rsplit('/').next().unwrap_or(relative);
    if relative.split('/').any(|part| part.starts_with('.')) {
        return FileRole::Ignored;
    }
    if file.to_ascii_lowercase().starts_with("readme") || file.ends_with(".md") {
        return FileRole::Ignored;
    }
    for (dir, is_layout) in [("partials/", false), ("layouts/", true)] {
        if let Some(rest) = relative.strip_prefix(dir) {
            let Some(name) = rest.strip_suffix(".hbs") else {
                return FileRole::Unrecognised { reason: format!("files in `{dir}` must end in `.hbs`") };
            };
            if let Err(reason) = check_name(name) {
                return FileRole::Unrecognised { reason };
            }
            let name = name.to_string();
            return if is_layout { FileRole::Layout { name } } else { FileRole::Partial { name } };
        }
    }
    for (suffix, channel) in SUFFIXES {
        if let Some(name) = relative.strip_suffix(suffix) {
            if let Err(reason) = check_name(name) {
                return FileRole::Unrecognised { reason };
            }
            let name = name.to_string();
            return match channel {
                Some(channel) => FileRole::Message { name, channel: *channel },
                None => FileRole::EmailText { name },
            };
        }
    }
    FileRole::Unrecognised {
        reason: "a template is named `NAME.email.hbs`, `NAME.email.txt.hbs`, `NAME.sms.hbs`, `NAME.push.hbs` or `NAME.webhook.hbs`".into(),
    }
}

/// Template names are `/`-separated words of letters, digits, `_` and `-`, so that a
/// journey can write them plainly and handlebars can use them as partial names.
fn check_name(name: &str) -> Result<(), String> {
    let word_ok = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.split('/').all(word_ok) {
        Ok(())
    } else {
        Err(format!("`{name}` is not a template name: use words of letters, digits, `_` and `-`, separated by `/`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_path_and_the_channel_from_the_suffix() {
        assert_eq!(
            classify("winback/offer.email.hbs"),
            FileRole::Message { name: "winback/offer".into(), channel: Channel::Email }
        );
        assert_eq!(classify("welcome.email.txt.hbs"), FileRole::EmailText { name: "welcome".into() });
        assert_eq!(classify("a.sms.hbs"), FileRole::Message { name: "a".into(), channel: Channel::Sms });
        assert_eq!(classify("a.push.hbs"), FileRole::Message { name: "a".into(), channel: Channel::Push });
        assert_eq!(classify("a.webhook.hbs"), FileRole::Message { name: "a".into(), channel: Channel::Webhook });
        assert_eq!(classify("partials/button.hbs"), FileRole::Partial { name: "button".into() });
        assert_eq!(classify("layouts/base.hbs"), FileRole::Layout { name: "base".into() });
    }

    #[test]
    fn other_files_are_unrecognised_except_dotfiles_and_docs() {
        assert!(matches!(classify("welcome.html"), FileRole::Unrecognised { .. }));
        assert!(matches!(classify("welcome.mail.hbs"), FileRole::Unrecognised { .. }));
        assert!(matches!(classify("my offer.email.hbs"), FileRole::Unrecognised { .. }));
        assert!(matches!(classify(".email.hbs"), FileRole::Ignored));
        assert!(matches!(classify("partials/button.html"), FileRole::Unrecognised { .. }));
        assert_eq!(classify(".gitkeep"), FileRole::Ignored);
        assert_eq!(classify("README.md"), FileRole::Ignored);
    }
}
