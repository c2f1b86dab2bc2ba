//! Text-shaping transformations: case, white space, NULs, comments, command
//! lines and paths.

use super::decode::is_space;
use crate::byteset::{byte_set, has};

fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

const NBSP: u8 = 0xa0;

/// Whether `s` holds any of `set`'s bytes, three at a time with the
/// vectorised searches: the quick "unchanged" checks run on every value.
fn has_any(s: &[u8], set: &[u8]) -> bool {
    set.chunks(3).any(|c| match *c {
        [a] => memchr::memchr(a, s).is_some(),
        [a, b] => memchr::memchr2(a, b, s).is_some(),
        [a, b, c] => memchr::memchr3(a, b, c, s).is_some(),
        _ => false,
    })
}

pub fn lowercase(s: &[u8], out: &mut Vec<u8>) -> bool {
    if !s.iter().any(u8::is_ascii_uppercase) {
        return false;
    }
    out.extend(s.iter().map(u8::to_ascii_lowercase));
    true
}

pub fn uppercase(s: &[u8], out: &mut Vec<u8>) -> bool {
    if !s.iter().any(u8::is_ascii_lowercase) {
        return false;
    }
    out.extend(s.iter().map(u8::to_ascii_uppercase));
    true
}

/// Whether `compress_whitespace` can change `s` (false means it certainly does not).
fn may_change_compress_whitespace(s: &[u8]) -> bool {
    // Ordinary text has single spaces only: ruled out with fast searches.
    if !has_any(s, b"\t\n\x0b\x0c\r\xa0") && memchr::memmem::find(s, b"  ").is_none() {
        return false;
    }
    // Unchanged unless some white space is not a lone ' '.
    let mut prev_space = false;
    s.iter().any(|&b| {
        let space = is_space(b) || b == NBSP;
        let change = space && (b != b' ' || prev_space);
        prev_space = space;
        change
    })
}

pub fn compress_whitespace(s: &[u8], out: &mut Vec<u8>) -> bool {
    may_change_compress_whitespace(s) && compress_whitespace_full(s, out)
}

fn compress_whitespace_full(s: &[u8], out: &mut Vec<u8>) -> bool {
    let mut in_space = false;
    for &b in s {
        if is_space(b) || b == NBSP {
            if !in_space {
                out.push(b' ');
                in_space = true;
            }
        } else {
            out.push(b);
            in_space = false;
        }
    }
    out.as_slice() != s
}

/// Whether `remove_whitespace` can change `s` (false means it certainly does not).
fn may_change_remove_whitespace(s: &[u8]) -> bool {
    s.iter().any(|&b| is_space(b) || b == NBSP)
}

pub fn remove_whitespace(s: &[u8], out: &mut Vec<u8>) -> bool {
    may_change_remove_whitespace(s) && remove_whitespace_full(s, out)
}

fn remove_whitespace_full(s: &[u8], out: &mut Vec<u8>) -> bool {
    // Every byte is written, and the position moves on past those kept:
    // no branch on the data.
    let start = out.len();
    out.resize(start + s.len(), 0);
    let mut kept = start;
    for &b in s {
        if let Some(d) = out.get_mut(kept) {
            *d = b;
        }
        kept += usize::from(!has(&SPACE, b));
    }
    out.truncate(kept);
    kept - start != s.len()
}

/// White space as `compressWhitespace` and `removeWhitespace` see it.
const SPACE: [bool; 256] = byte_set(b" \t\n\x0b\x0c\r\xa0");

pub fn remove_nulls(s: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(0, s).is_none() {
        return false;
    }
    out.extend(s.iter().copied().filter(|&b| b != 0));
    true
}

pub fn replace_nulls(s: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(0, s).is_none() {
        return false;
    }
    out.extend(s.iter().map(|&b| if b == 0 { b' ' } else { b }));
    true
}

pub fn trim_left(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    s.get(start..).unwrap_or(&[])
}

pub fn trim_right(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_space(b)).map_or(0, |p| p + 1);
    s.get(..end).unwrap_or(&[])
}

/// Each `/* ... */` becomes one space; an unclosed comment runs to the end.
pub fn replace_comments(s: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memmem::find(s, b"/*").is_none() {
        return false;
    }
    let mut i = 0;
    let mut in_comment = false;
    while i < s.len() {
        if !in_comment {
            if at(s, i) == b'/' && at(s, i + 1) == b'*' && i + 1 < s.len() {
                in_comment = true;
                i += 2;
            } else {
                out.push(at(s, i));
                i += 1;
            }
        } else if at(s, i) == b'*' && at(s, i + 1) == b'/' && i + 1 < s.len() {
            in_comment = false;
            out.push(b' ');
            i += 2;
        } else {
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
    true
}

/// Removes `/* */` and `<!-- -->` comments, and everything after `--` or `#`.
/// Whether `remove_comments` can change `s` (false means it certainly does not).
fn may_change_remove_comments(s: &[u8]) -> bool {
    has_any(s, b"/<-#")
}

pub fn remove_comments(s: &[u8], out: &mut Vec<u8>) -> bool {
    may_change_remove_comments(s) && remove_comments_full(s, out)
}

fn remove_comments_full(s: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    let mut in_comment = false;
    while i < s.len() {
        let rest = s.get(i..).unwrap_or(&[]);
        if !in_comment {
            if rest.starts_with(b"/*") {
                in_comment = true;
                i += 2;
            } else if rest.starts_with(b"<!--") {
                in_comment = true;
                i += 4;
            } else if rest.starts_with(b"--") || rest.starts_with(b"#") {
                break;
            } else {
                out.push(at(s, i));
                i += 1;
            }
        } else if rest.starts_with(b"*/") {
            in_comment = false;
            i += 2;
        } else if rest.starts_with(b"-->") {
            in_comment = false;
            i += 3;
        } else {
            i += 1;
        }
    }
    out.as_slice() != s
}

/// Removes the comment markers themselves: `/*`, `*/`, `<!--`, `-->`, `--`, `#`.
/// Whether `remove_comments_char` can change `s` (false means it certainly does not).
fn may_change_remove_comments_char(s: &[u8]) -> bool {
    // Every marker starts with one of these.
    has_any(s, b"/*<-#")
}

pub fn remove_comments_char(s: &[u8], out: &mut Vec<u8>) -> bool {
    may_change_remove_comments_char(s) && remove_comments_char_full(s, out)
}

fn remove_comments_char_full(s: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < s.len() {
        let rest = s.get(i..).unwrap_or(&[]);
        let skip = if rest.starts_with(b"/*") || rest.starts_with(b"*/") {
            2
        } else if rest.starts_with(b"<!--") {
            4
        } else if rest.starts_with(b"-->") {
            3
        } else if rest.starts_with(b"--") {
            2
        } else if rest.starts_with(b"#") {
            1
        } else {
            0
        };
        if skip == 0 {
            out.push(at(s, i));
            i += 1;
        } else {
            i += skip;
        }
    }
    out.len() != s.len()
}

/// Shell-evasion folding: drops `\ " ' ^`, turns `,` `;` and white space
/// into one space, removes a space before `/` or `(`, lower-cases.
/// Whether `cmd_line` can change `s` (false means it certainly does not).
fn may_change_cmd_line(s: &[u8]) -> bool {
    // Unchanged when nothing is dropped, folded or lower-cased.
    let mut prev_space = false;
    s.iter().any(|&b| {
        let change = matches!(
            b,
            b'"' | b'\'' | b'\\' | b'^' | b',' | b';' | b'\t' | b'\r' | b'\n'
        ) || b.is_ascii_uppercase()
            || (b == b' ' && prev_space)
            || (prev_space && matches!(b, b'/' | b'('));
        prev_space = b == b' ';
        change
    })
}

pub fn cmd_line(s: &[u8], out: &mut Vec<u8>) -> bool {
    may_change_cmd_line(s) && cmd_line_full(s, out)
}

fn cmd_line_full(s: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(s.len());
    let mut space = false;
    for &b in s {
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            _ => {
                out.push(b.to_ascii_lowercase());
                space = false;
            }
        }
    }
    out.as_slice() != s
}

/// Resolves `.` and `..` segments and repeated slashes; a trailing slash
/// stays. `win` first turns backslashes into slashes.
pub fn normalize_path(s: &[u8], out: &mut Vec<u8>, win: bool) -> bool {
    may_change_normalize_path(s, win) && normalize_path_full(s, out, win)
}

/// Whether `normalize_path` can change `s` (false means it certainly does not).
fn may_change_normalize_path(s: &[u8], win: bool) -> bool {
    // Without dots, doubled slashes or (on Windows) backslashes there is
    // nothing to resolve; without any separator, only "." and ".." change.
    let backslash = win && memchr::memchr(b'\\', s).is_some();
    !s.is_empty()
        && (backslash
            || (memchr::memchr(b'.', s).is_some() || memchr::memmem::find(s, b"//").is_some())
                && (memchr::memchr(b'/', s).is_some() || s == b"." || s == b".."))
}

fn normalize_path_full(s: &[u8], out: &mut Vec<u8>, win: bool) -> bool {
    let original = s;
    let owned: Vec<u8>;
    let s = if win {
        owned = s
            .iter()
            .map(|&b| if b == b'\\' { b'/' } else { b })
            .collect();
        owned.as_slice()
    } else {
        s
    };
    let rooted = s.first() == Some(&b'/');
    let trailing = s.last() == Some(&b'/')
        || s.ends_with(b"/.")
        || s.ends_with(b"/..")
        || s == b"."
        || s == b"..";
    let mut segs: Vec<&[u8]> = Vec::new();
    for seg in s.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segs.last().is_some_and(|l| *l != b"..") {
                    segs.pop();
                } else if !rooted {
                    segs.push(seg);
                }
            }
            _ => segs.push(seg),
        }
    }
    if rooted {
        out.push(b'/');
    }
    for (n, seg) in segs.iter().enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(seg);
    }
    if trailing && !segs.is_empty() {
        out.push(b'/');
    }
    out.as_slice() != original
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(f: fn(&[u8], &mut Vec<u8>) -> bool, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if f(input, &mut out) {
            out
        } else {
            input.to_vec()
        }
    }

    /// Every string of up to four bytes from an alphabet of the bytes
    /// these transformations care about: the quick "unchanged" checks
    /// never skip a change.
    #[test]
    fn quick_checks_never_skip_a_change() {
        let alphabet = b" \ta/.\"(-#*<!\\,A\xa0";
        type Quick = fn(&[u8]) -> bool;
        type Full = fn(&[u8], &mut Vec<u8>) -> bool;
        let fulls: [(Quick, Full); 7] = [
            (may_change_compress_whitespace, compress_whitespace_full),
            (may_change_remove_whitespace, remove_whitespace_full),
            (may_change_remove_comments_char, remove_comments_char_full),
            (may_change_remove_comments, remove_comments_full),
            (may_change_cmd_line, cmd_line_full),
            (
                |s| may_change_normalize_path(s, false),
                |s, out| normalize_path_full(s, out, false),
            ),
            (
                |s| may_change_normalize_path(s, true),
                |s, out| normalize_path_full(s, out, true),
            ),
        ];
        let n = alphabet.len();
        for len in 0..=4u32 {
            for code in 0..n.pow(len) {
                let mut s = Vec::new();
                let mut c = code;
                for _ in 0..len {
                    s.push(alphabet[c % n]);
                    c /= n;
                }
                for (i, (quick, full)) in fulls.iter().enumerate() {
                    if !quick(&s) {
                        let mut out = Vec::new();
                        let changed = full(&s, &mut out) && out != s;
                        assert!(!changed, "transformation {i} changes {s:?} to {out:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn white_space_and_nuls() {
        assert_eq!(run(compress_whitespace, b"a \t\n\xa0b  c"), b"a b c");
        assert_eq!(run(remove_whitespace, b" a\tb\xa0c "), b"abc");
        assert_eq!(run(remove_nulls, b"a\0b"), b"ab");
        assert_eq!(run(replace_nulls, b"a\0b"), b"a b");
        assert_eq!(trim_left(b" \ta "), b"a ");
        assert_eq!(trim_right(b" a \n"), b" a");
    }

    #[test]
    fn comments() {
        assert_eq!(
            run(replace_comments, b"sel/**/ect/*x*/1/* open"),
            b"sel ect 1 "
        );
        assert_eq!(run(remove_comments, b"a/*x*/b<!--y-->c--rest"), b"abc");
        assert_eq!(
            run(remove_comments_char, b"a/*b*/c<!--d-->e--f#g"),
            b"abcdefg"
        );
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            run(cmd_line, b"C^a\"t' /e\\tc/pa,s;swd  (x)"),
            b"cat/etc/pa s swd(x)"
        );
    }

    #[test]
    fn paths() {
        let n = |s: &[u8]| {
            let mut out = Vec::new();
            if normalize_path(s, &mut out, false) {
                out
            } else {
                s.to_vec()
            }
        };
        assert_eq!(n(b"/a/b/../../../etc//passwd"), b"/etc/passwd");
        assert_eq!(n(b"a/./b/"), b"a/b/");
        assert_eq!(n(b"../../x"), b"../../x");
        assert_eq!(n(b"/a/.."), b"/");
        let mut out = Vec::new();
        normalize_path(b"c:\\windows\\..\\boot.ini", &mut out, true);
        assert_eq!(out, b"c:/boot.ini");
    }
}
