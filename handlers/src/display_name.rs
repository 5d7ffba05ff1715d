//! The names people show in a room, from `?name=`: normalised so that two names that look the
//! same are the same string, and free of the characters that make a name look like another.
//!
//! # Guarantees
//! - A name is trimmed and in Unicode Normalization Form C: `é` typed as one character or as
//!   `e` and a combining accent is the same name.
//! - A name holds no control characters, no bidirectional controls (which can make `ada` show
//!   as another name, or reverse what follows it) and nothing else Unicode's data says is
//!   invisible or formatting (default-ignorable code points, format characters, separators
//!   other than the plain space), which make `ada` and `a\u{200b}da` look alike.
//!
//! # Caveats
//! - Names that only look alike in a given font (Latin `a` and Cyrillic `а`) stay apart:
//!   telling them apart is a confusables table's job, not a chat room's.
//! - Emoji joined by a zero-width joiner (family emoji) are refused with the joiner.

use unicode_normalization::UnicodeNormalization;

/// Longest display name a client may pick with `?name=`, in characters (after normalising).
pub const DISPLAY_NAME_MAX_CHARS: usize = 32;

/// The display name `raw` asks for: `None` for none (absent or blank), or why it is refused.
pub fn display_name(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let name: String = name.nfc().collect();
    if name.chars().count() > DISPLAY_NAME_MAX_CHARS {
        return Err(format!(
            "query parameter \"name\" must be at most {DISPLAY_NAME_MAX_CHARS} characters"
        ));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control() || is_invisible(*c)) {
        return Err(format!(
            "query parameter \"name\" must not contain control, bidirectional or invisible characters (found U+{:04X})",
            u32::from(bad)
        ));
    }
    Ok(Some(name))
}

/// What cannot be seen, or changes how its neighbours are seen, by Unicode's own data:
/// default-ignorable code points (zero-width characters, joiners, variation selectors, the
/// combining grapheme joiner, Hangul fillers, tags, …), format characters (bidirectional
/// controls, U+0600 and other prepended marks), private-use, surrogate and unassigned code
/// points, line and paragraph separators, and every space but U+0020.
fn is_invisible(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c) {
        return true;
    }
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    matches!(
        category,
        GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || (category == GeneralCategory::SpaceSeparator && c != ' ')
        // The braille blank is a symbol (So) that draws nothing: Unicode has no property for
        // "renders as blank", so it is the one character named here.
        || c == '\u{2800}'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_composed() {
        assert_eq!(display_name(Some("  ada ")), Ok(Some("ada".into())));
        let decomposed = "Jose\u{0301}";
        assert_eq!(display_name(Some(decomposed)), Ok(Some("José".into())));
        assert_eq!(display_name(Some("   ")), Ok(None));
        assert_eq!(display_name(None), Ok(None));
        assert_eq!(display_name(Some("Zoë 🎉")), Ok(Some("Zoë 🎉".into())));
        for name in [
            "Ada Lovelace",
            "Đặng Thị",
            "محمد",
            "李小龙",
            "O'Brien-Smith",
        ] {
            assert_eq!(display_name(Some(name)), Ok(Some(name.into())), "{name}");
        }
    }

    #[test]
    fn names_that_would_look_like_another_are_refused() {
        for name in [
            "a\u{200B}da",         // zero-width space
            "ada\u{202E}nimda",    // right-to-left override
            "\u{2066}ada\u{2069}", // isolate
            "ad\u{00AD}a",         // soft hyphen
            "ada\u{FEFF}",         // BOM inside (trim keeps it)
            "a\u{200D}da",         // joiner
            "ada\u{0007}",         // control
            "a\u{034F}da",         // combining grapheme joiner
            "ada\u{FE0F}",         // variation selector 16
            "ada\u{E0100}",        // variation selector 17
            "ada\u{180B}",         // Mongolian free variation selector
            "ada\u{17B4}",         // Khmer inherent vowel
            "\u{2800}",            // braille blank
            "\u{0600}ada",         // Arabic number sign (prepended format character)
            "ada\u{13430}",        // Egyptian hieroglyph format control
            "ada\u{1BCA0}",        // shorthand format control
            "a\u{00A0}da",         // no-break space inside a name
            "a\u{2028}da",         // line separator
            "a\u{E000}da",         // private use
            "a\u{0378}da",         // unassigned
        ] {
            let refused = display_name(Some(name)).unwrap_err();
            assert!(refused.contains("invisible"), "{name:?}: {refused}");
        }
    }

    #[test]
    fn the_length_counts_characters_after_composing() {
        let composed_32 = "é".repeat(32);
        let decomposed_32 = "e\u{0301}".repeat(32);
        assert!(display_name(Some(&composed_32)).is_ok());
        assert!(
            display_name(Some(&decomposed_32)).is_ok(),
            "64 code points, 32 characters"
        );
        assert!(display_name(Some(&"é".repeat(33))).is_err());
    }
}
