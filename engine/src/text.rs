//! The one rule for the characters of text that people send.
//!
//! Everything a person types that can end up in an event (a chat line, a welcome text, a
//! kick or ban reason, a room name, a display name, the user part of an address, an id)
//! passes through [`check`] at the command boundary (`decide`), so nothing refused here
//! reaches the journal, and exports, reports and feeds never carry it.
//!
//! Refused in every kind of text:
//! - C0 controls (U+0000..U+001F: NUL, BEL, BS, ESC, CR...), DEL (U+007F) and C1
//!   controls (U+0080..U+009F: NEL, CSI...), except line feed and tab in multi-line
//!   bodies ([`TextKind::Body`]). A carriage return is refused too: gateways turn CRLF
//!   into LF before they build a command.
//! - Bidirectional embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069):
//!   they reorder what follows them ("Trojan Source", CVE-2021-42574).
//! - The Unicode line and paragraph separators (U+2028, U+2029): line breaks that
//!   logs, JSON embedded in HTML and most clients do not expect.
//!
//! Refused in names ([`TextKind::Name`]) as well: the bidirectional marks (LRM U+200E,
//! RLM U+200F, ALM U+061C), which free text in right-to-left scripts needs but a name
//! does not, and the invisible characters (default-ignorable code points such as the
//! zero-width space, word joiner, soft hyphen, Hangul fillers and tag characters) with
//! which two names that look the same differ. The zero-width joiner and non-joiner
//! (U+200C, U+200D) and the variation selectors stay allowed: scripts and emoji
//! sequences need them.
//!
//! Whether two names are the same name is a question about names, answered in
//! [`crate::ids`] ([`crate::ids::fold_name`], [`crate::ids::name_keys`]); whether one word
//! of a name mixes look-alike scripts is [`mixed_script_word`] here.

use std::fmt;

use unicode_script::{Script, UnicodeScript};
use unicode_security::mixed_script::AugmentedScriptSet;

/// What a field holds, which decides the few characters it may hold beyond the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A name or identifier: room names, display names, the user part of an address,
    /// ids, gateway names. One line, no bidirectional marks, nothing invisible.
    Name,
    /// One line of free text: kick and ban reasons.
    Line,
    /// Multi-line free text: chat bodies and welcome texts. Line feeds and tabs allowed.
    Body,
}

/// Why a character is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    /// A C0 or C1 control character, or DEL.
    Control,
    /// A bidirectional embedding, override or isolate, or (in names) a bidirectional mark.
    Bidi,
    /// U+2028 or U+2029.
    LineSeparator,
    /// An invisible (default-ignorable) character, in a name.
    Invisible,
}

impl CharClass {
    /// Lowercase name, as used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CharClass::Control => "a control character",
            CharClass::Bidi => "a bidirectional formatting character",
            CharClass::LineSeparator => "a line or paragraph separator",
            CharClass::Invisible => "an invisible character",
        }
    }
}

/// The first refused character of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden {
    /// The character.
    pub ch: char,
    /// Its position, in characters from the start.
    pub index: usize,
    /// Why it is refused.
    pub class: CharClass,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "U+{:04X} at character {} is {}, which is not allowed",
            u32::from(self.ch),
            self.index,
            self.class.as_str()
        )
    }
}

impl std::error::Error for Forbidden {}

/// Why `ch` may not appear in a text of `kind`, or `None` if it may.
pub fn classify(ch: char, kind: TextKind) -> Option<CharClass> {
    let name = kind == TextKind::Name;
    match ch {
        '\n' | '\t' if kind == TextKind::Body => None,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Some(CharClass::Control),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => Some(CharClass::Bidi),
        '\u{2028}' | '\u{2029}' => Some(CharClass::LineSeparator),
        '\u{200e}' | '\u{200f}' | '\u{61c}' if name => Some(CharClass::Bidi),
        c if name && invisible(c) => Some(CharClass::Invisible),
        _ => None,
    }
}

/// The default-ignorable code points (Unicode's DerivedCoreProperties) that a name may
/// not hold: all of them but the joiners (U+200C, U+200D), the variation selectors and
/// the Mongolian free variation selectors, which scripts and emoji need; bidirectional
/// controls and marks are [`CharClass::Bidi`]. Plus the interlinear annotation controls
/// (U+FFF9..U+FFFB), invisible but not default-ignorable.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180e}'
            | '\u{200b}'
            | '\u{2060}'..='\u{2065}'
            | '\u{206a}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e00ff}'
            | '\u{e01f0}'..='\u{e0fff}'
    )
}

/// The one rule: the first character of `text` that a text of `kind` may not hold.
pub fn check(text: &str, kind: TextKind) -> Result<(), Forbidden> {
    match text
        .chars()
        .enumerate()
        .find_map(|(index, ch)| classify(ch, kind).map(|class| Forbidden { ch, index, class }))
    {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The first word of `name` that mixes scripts the way look-alike names do (UTS #39
/// restriction levels, word by word): a word is accepted when it is single-script
/// (Japanese, Korean and Chinese with Bopomofo each count as one script), or Latin with
/// Han, Japanese or Korean ("highly restrictive"), or Latin with one other recommended
/// script that is neither Cyrillic nor Greek ("moderately restrictive"). So "pаypal" with
/// a Cyrillic "а" is refused, while "комната", "会議室", "東京office" and "Офис London"
/// (two words) are not. Words are split at characters of the Common script (spaces,
/// punctuation, digits), which belong to every script.
pub fn mixed_script_word(name: &str) -> Option<&str> {
    name.split(|c: char| c.script() == Script::Common)
        .find(|word| !word.is_empty() && !acceptable_word(word))
}

fn acceptable_word(word: &str) -> bool {
    if !AugmentedScriptSet::for_str(word).is_empty() {
        return true;
    }
    let mut others = AugmentedScriptSet::default();
    for ch in word.chars() {
        let set = AugmentedScriptSet::for_char(ch);
        if !set.base.contains_script(Script::Latin) {
            others.intersect_with(set);
        }
    }
    if others.hanb || others.jpan || others.kore {
        return true;
    }
    let mut scripts = others.base.iter();
    match (scripts.next(), scripts.next()) {
        (Some(only), None) => {
            only.is_recommended() && only != Script::Cyrillic && only != Script::Greek
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_keep_line_feeds_and_tabs_names_do_not() {
        assert!(check("a\nb\tc", TextKind::Body).is_ok());
        assert_eq!(
            check("a\nb", TextKind::Line).unwrap_err().class,
            CharClass::Control
        );
        assert_eq!(check("a\tb", TextKind::Name).unwrap_err().index, 1);
        assert!(check("a\r\nb", TextKind::Body).is_err());
    }

    #[test]
    fn every_class_is_refused_everywhere() {
        for kind in [TextKind::Name, TextKind::Line, TextKind::Body] {
            for ch in ['\0', '\u{1b}', '\u{7}', '\u{7f}', '\u{85}', '\u{9b}'] {
                assert_eq!(classify(ch, kind), Some(CharClass::Control), "{ch:?}");
            }
            for ch in ['\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}'] {
                assert_eq!(classify(ch, kind), Some(CharClass::Bidi), "{ch:?}");
            }
            assert_eq!(classify('\u{2028}', kind), Some(CharClass::LineSeparator));
        }
    }

    #[test]
    fn marks_and_invisibles_only_in_names() {
        assert_eq!(classify('\u{200f}', TextKind::Name), Some(CharClass::Bidi));
        assert_eq!(classify('\u{200f}', TextKind::Body), None);
        assert_eq!(
            classify('\u{200b}', TextKind::Name),
            Some(CharClass::Invisible)
        );
        assert_eq!(classify('\u{200b}', TextKind::Line), None);
        // Joiners and variation selectors: Persian, emoji sequences.
        assert!(check("می\u{200c}خواهم", TextKind::Name).is_ok());
        assert!(check("👩\u{200d}💻\u{fe0f}", TextKind::Name).is_ok());
        assert!(check("Ana María", TextKind::Name).is_ok());
    }

    #[test]
    fn look_alike_script_mixes_in_one_word() {
        assert_eq!(mixed_script_word("p\u{430}ypal"), Some("p\u{430}ypal"));
        assert_eq!(mixed_script_word("team p\u{430}y"), Some("p\u{430}y"));
        assert_eq!(mixed_script_word("комната"), None);
        assert_eq!(mixed_script_word("会議室"), None);
        assert_eq!(mixed_script_word("東京オフィス"), None);
        assert_eq!(mixed_script_word("東京office"), None);
        assert_eq!(mixed_script_word("Офис London"), None);
        assert_eq!(mixed_script_word("Москва-London #2"), None);
        assert_eq!(mixed_script_word("café"), None);
        assert_eq!(mixed_script_word("ivan\u{3b1}"), Some("ivan\u{3b1}"));
    }
}
