//! How many SMS segments a text takes (what the provider bills), pure.
//!
//! A text that fits the GSM-7 alphabet (GSM 03.38 basic set, plus the extension table
//! whose characters take two septets: an escape and the character) is sent in septets:
//! 160 in one segment, 153 per segment once it needs several (the user data header of a
//! concatenated message takes 7). Any other character (Chinese, most emoji, curly quotes)
//! switches the whole text to UCS-2: 70 UTF-16 code units in one segment, 67 per segment
//! when concatenated. A character is never split across two segments (an escape pair, or
//! the two halves of a surrogate pair), as carriers do.

use serde::Serialize;

/// The GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table (two septets each: ESC + the character).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Units in a message of one segment.
    pub fn single(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units per segment of a concatenated message.
    pub fn per_part(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

/// What a text costs as an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segments {
    pub encoding: Encoding,
    /// Characters as people count them.
    pub characters: usize,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Segments billed (0 for an empty text).
    pub segments: usize,
}

/// Septets of a character in GSM-7, or None when GSM-7 cannot carry it.
fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Counts the segments of `text`.
pub fn count(text: &str) -> Segments {
    let gsm: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    let (encoding, sizes) = match gsm {
        Some(sizes) => (Encoding::Gsm7, sizes),
        None => (Encoding::Ucs2, text.chars().map(char::len_utf16).collect()),
    };
    let units: usize = sizes.iter().sum();
    let segments = if units == 0 {
        0
    } else if units <= encoding.single() {
        1
    } else {
        // Fill each part up to its size without splitting a character.
        let (mut parts, mut used) = (1, 0);
        for size in sizes {
            if used + size > encoding.per_part() {
                parts += 1;
                used = 0;
            }
            used += size;
        }
        parts
    };
    Segments { encoding, characters: text.chars().count(), units, segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(text: &str) -> (Encoding, usize, usize) {
        let s = count(text);
        (s.encoding, s.units, s.segments)
    }

    #[test]
    fn plain_latin_text_is_gsm7_and_fits_160_septets_in_one_segment() {
        assert_eq!(segments("Hi Ada, your points wait."), (Encoding::Gsm7, 25, 1));
        assert_eq!(segments(&"a".repeat(160)), (Encoding::Gsm7, 160, 1));
    }

    #[test]
    fn the_161st_septet_makes_two_segments_of_153() {
        assert_eq!(segments(&"a".repeat(161)), (Encoding::Gsm7, 161, 2));
        assert_eq!(segments(&"a".repeat(306)), (Encoding::Gsm7, 306, 2));
        assert_eq!(segments(&"a".repeat(307)), (Encoding::Gsm7, 307, 3));
    }

    #[test]
    fn extension_characters_count_two_septets() {
        assert_eq!(segments("€5 off {today}"), (Encoding::Gsm7, 17, 1));
        assert_eq!(segments(&"€".repeat(80)), (Encoding::Gsm7, 160, 1));
        assert_eq!(segments(&format!("{}€", "a".repeat(159))), (Encoding::Gsm7, 161, 2));
    }

    #[test]
    fn an_escape_pair_is_never_split_across_segments() {
        // 152 septets, then `€` (2) would straddle the first part's end: it moves to part two.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&text), (Encoding::Gsm7, 306, 3));
    }

    #[test]
    fn gsm7_accents_and_greek_stay_gsm7() {
        assert_eq!(segments("Café à Zürich: ΔΣ £5"), (Encoding::Gsm7, 20, 1));
    }

    #[test]
    fn chinese_text_is_ucs2_with_70_units_in_one_segment() {
        assert_eq!(segments("您好"), (Encoding::Ucs2, 2, 1));
        assert_eq!(segments(&"好".repeat(70)), (Encoding::Ucs2, 70, 1));
        assert_eq!(segments(&"好".repeat(71)), (Encoding::Ucs2, 71, 2));
        assert_eq!(segments(&"好".repeat(134)), (Encoding::Ucs2, 134, 2));
        assert_eq!(segments(&"好".repeat(135)), (Encoding::Ucs2, 135, 3));
    }

    #[test]
    fn one_emoji_turns_the_whole_text_into_ucs2_and_counts_two_units() {
        let text = format!("{} 🎂", "a".repeat(60));
        assert_eq!(segments(&text), (Encoding::Ucs2, 63, 1));
        assert_eq!(segments(&"🎂".repeat(35)), (Encoding::Ucs2, 70, 1));
        assert_eq!(segments(&format!("{}🎂", "a".repeat(69))), (Encoding::Ucs2, 71, 2));
    }

    #[test]
    fn a_surrogate_pair_is_never_split_across_segments() {
        // 66 units, then an emoji (2) would straddle the first part's end.
        let text = format!("{}🎂{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(segments(&text), (Encoding::Ucs2, 134, 3));
    }

    #[test]
    fn an_empty_text_is_no_segment() {
        assert_eq!(segments(""), (Encoding::Gsm7, 0, 0));
    }

    #[test]
    fn the_winback_nudge_in_chinese_counts_as_ucs2() {
        let s = count("【茶馆】您好，您的专属回归优惠本周到期，欢迎回来看看：https://teahouse.example 回T退订");
        assert_eq!((s.encoding, s.units, s.segments), (Encoding::Ucs2, 56, 1));
    }
}
