//! Values the engine shares many times a request: the small decimal
//! numbers of TX (paranoia levels, anomaly scores, flags). Made as
//! static bytes, a number is shared and dropped without touching a
//! reference count: a request copies some forty of them from the
//! prologue, and every rule that matches one keeps a copy until the
//! next rule, each of which would otherwise be two atomic updates of a
//! count (and a first copy an allocation).

use bytes::Bytes;

/// Numbers below this are made as static bytes.
const SMALL: usize = 1000;

/// The decimal form of each number below `SMALL`, left-aligned in three
/// bytes.
static DIGITS: [[u8; 3]; SMALL] = {
    let mut table = [[0u8; 3]; SMALL];
    let mut n = 0;
    // Worked out at compile time: an index out of bounds would fail the
    // build, not a request.
    #[allow(clippy::indexing_slicing)]
    while n < SMALL {
        let d = [(n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8];
        table[n] = if n >= 100 {
            [b'0' + d[0], b'0' + d[1], b'0' + d[2]]
        } else if n >= 10 {
            [b'0' + d[1], b'0' + d[2], 0]
        } else {
            [b'0' + d[2], 0, 0]
        };
        n += 1;
    }
    table
};

fn small(n: usize) -> Option<Bytes> {
    let len = match n {
        0..10 => 1,
        10..100 => 2,
        _ => 3,
    };
    DIGITS
        .get(n)
        .and_then(|d| d.get(..len))
        .map(Bytes::from_static)
}

/// `n` in decimal.
pub fn number(n: i64) -> Bytes {
    usize::try_from(n)
        .ok()
        .and_then(small)
        .unwrap_or_else(|| Bytes::from(n.to_string()))
}

/// `v` as shared bytes: static when it is the plain decimal form of a
/// small number (no sign, no leading zero), as `number` makes it.
pub fn bytes(v: Vec<u8>) -> Bytes {
    let plain = matches!(v.as_slice(), [b'0'] | [b'1'..=b'9', ..]) && v.len() <= 3;
    plain
        .then(|| {
            v.iter().try_fold(0usize, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0'))
            })
        })
        .flatten()
        .and_then(small)
        .unwrap_or_else(|| Bytes::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_their_decimal_form() {
        for n in [0i64, 7, 10, 42, 99, 100, 999, 1000, 123_456, -1, -25] {
            assert_eq!(number(n), n.to_string().as_bytes(), "{n}");
        }
        for text in ["0", "5", "10", "999", "1000", "007", "-3", "", "4a", "a"] {
            assert_eq!(bytes(text.as_bytes().to_vec()), text.as_bytes(), "{text}");
        }
    }

    #[test]
    fn small_numbers_are_static() {
        // A static `Bytes` keeps pointing into the table when cloned.
        let a = number(5);
        let b = bytes(b"5".to_vec());
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(number(250).as_ptr(), bytes(b"250".to_vec()).as_ptr());
        // Beyond the table, or not in plain form: made as given.
        assert_ne!(number(1000).as_ptr(), number(1000).as_ptr());
        assert_ne!(bytes(b"05".to_vec()).as_ptr(), number(5).as_ptr());
    }
}
