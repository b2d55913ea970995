//! Text encodings of X9 files: ASCII or EBCDIC code page 037 (IBM CP037, US/Canada).
//!
//! Only the character set X9.100-187 allows in text fields matters here: digits, upper- and
//! lower-case letters, space and the usual punctuation (`/`, `-`, `*`, ...). Every byte of a text
//! field becomes exactly one ASCII byte, so field positions stay byte positions; a byte with no
//! ASCII equivalent becomes `?`, which no numeric field accepts.

/// How the text fields of a file are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Ascii,
    /// EBCDIC, code page 037.
    Ebcdic,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Ascii => "ASCII",
            Encoding::Ebcdic => "EBCDIC (cp037)",
        }
    }

    /// Decodes text bytes to ASCII, one byte for one byte.
    pub fn decode_into(self, bytes: &[u8], out: &mut String) {
        out.reserve(bytes.len());
        match self {
            Encoding::Ascii => {
                for &b in bytes {
                    out.push(if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '?'
                    });
                }
            }
            Encoding::Ebcdic => {
                for &b in bytes {
                    out.push(CP037_TO_ASCII[usize::from(b)] as char);
                }
            }
        }
    }

    pub fn decode(self, bytes: &[u8]) -> String {
        let mut s = String::with_capacity(bytes.len());
        self.decode_into(bytes, &mut s);
        s
    }

    /// Encodes ASCII text. Characters outside printable ASCII become `?` (ASCII) or the EBCDIC `?`.
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Encoding::Ascii => text
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c as u8
                    } else {
                        b'?'
                    }
                })
                .collect(),
            Encoding::Ebcdic => text
                .chars()
                .map(|c| {
                    let a = if c.is_ascii_graphic() || c == ' ' {
                        c as u8
                    } else {
                        b'?'
                    };
                    ascii_to_cp037(a)
                })
                .collect(),
        }
    }

    /// The encoding whose digits `0` and `1` are `bytes` (the record type of a file header, "01").
    pub fn detect_file_header(bytes: [u8; 2]) -> Option<Encoding> {
        match bytes {
            [b'0', b'1'] => Some(Encoding::Ascii),
            [0xF0, 0xF1] => Some(Encoding::Ebcdic),
            _ => None,
        }
    }
}

/// CP037 byte -> printable ASCII byte (`?` where CP037 has no ASCII equivalent).
static CP037_TO_ASCII: [u8; 256] = build_table();

const fn build_table() -> [u8; 256] {
    let mut t = [b'?'; 256];
    t[0x40] = b' ';
    t[0x4B] = b'.';
    t[0x4C] = b'<';
    t[0x4D] = b'(';
    t[0x4E] = b'+';
    t[0x4F] = b'|';
    t[0x50] = b'&';
    t[0x5A] = b'!';
    t[0x5B] = b'$';
    t[0x5C] = b'*';
    t[0x5D] = b')';
    t[0x5E] = b';';
    t[0x60] = b'-';
    t[0x61] = b'/';
    t[0x6B] = b',';
    t[0x6C] = b'%';
    t[0x6D] = b'_';
    t[0x6E] = b'>';
    t[0x6F] = b'?';
    t[0x79] = b'`';
    t[0x7A] = b':';
    t[0x7B] = b'#';
    t[0x7C] = b'@';
    t[0x7D] = b'\'';
    t[0x7E] = b'=';
    t[0x7F] = b'"';
    t[0xA1] = b'~';
    t[0xB0] = b'^';
    t[0xBA] = b'[';
    t[0xBB] = b']';
    t[0xC0] = b'{';
    t[0xD0] = b'}';
    t[0xE0] = b'\\';
    let mut i = 0;
    while i < 9 {
        t[0x81 + i] = b'a' + i as u8;
        t[0x91 + i] = b'j' + i as u8;
        t[0xC1 + i] = b'A' + i as u8;
        t[0xD1 + i] = b'J' + i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 8 {
        t[0xA2 + i] = b's' + i as u8;
        t[0xE2 + i] = b'S' + i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 10 {
        t[0xF0 + i] = b'0' + i as u8;
        i += 1;
    }
    t
}

/// Printable ASCII byte -> CP037 byte (the inverse of the table above; `?` for anything else).
fn ascii_to_cp037(a: u8) -> u8 {
    CP037_TO_ASCII
        .iter()
        .position(|&x| x == a && a != b'?')
        .map_or(0x6F, |p| p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp037_round_trips_the_x9_character_set() {
        let text = "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz /-*.,&'";
        let e = Encoding::Ebcdic.encode(text);
        assert_eq!(e.len(), text.len());
        assert_eq!(&e[..2], &[0xF0, 0xF1]);
        assert_eq!(e[10], 0x40);
        assert_eq!(Encoding::Ebcdic.decode(&e), text);
        assert_eq!(Encoding::Ascii.decode(&Encoding::Ascii.encode(text)), text);
    }

    #[test]
    fn header_detection() {
        assert_eq!(Encoding::detect_file_header(*b"01"), Some(Encoding::Ascii));
        assert_eq!(
            Encoding::detect_file_header([0xF0, 0xF1]),
            Some(Encoding::Ebcdic)
        );
        assert_eq!(Encoding::detect_file_header(*b"25"), None);
    }
}
