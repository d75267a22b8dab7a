//! Punycode (RFC 3492): the Bootstring encoding that turns a Unicode label into the ASCII
//! of an A-label (`bücher` <-> `bcher-kva`, written `xn--bcher-kva` in a domain). Pure, no
//! allocation beyond the result; every step of the arithmetic is checked, so hostile input
//! (a fuzzer's, or an `xn--` label in a client's address) gives `None`, never a panic or a
//! wrong answer. Domains and the `xn--` prefix are [`crate::idna`]'s business.

/// RFC 3492 section 5: the parameter values for Punycode.
const BASE: u32 = 36;
const TMIN: u32 = 1;
const TMAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 0x80;
const DELIMITER: char = '-';

/// RFC 3492 6.1: the new bias after a delta.
fn adapt(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - TMIN) * TMAX) / 2 {
        delta /= BASE - TMIN;
        k += BASE;
    }
    k + (BASE - TMIN + 1) * delta / (delta + SKEW)
}

/// The threshold `t` of RFC 3492 6.2/6.3 for the digit at position `k`.
fn threshold(k: u32, bias: u32) -> u32 {
    k.saturating_sub(bias).clamp(TMIN, TMAX)
}

/// A digit value as its ASCII character: `a`..`z` then `0`..`9`, lower case.
fn digit_char(d: u32) -> char {
    let b = match d {
        0..=25 => b'a' + d as u8,
        _ => b'0' + (d - 26) as u8,
    };
    char::from(b)
}

/// A character as a digit value; either case (RFC 3492 5).
fn digit_value(c: char) -> Option<u32> {
    match c {
        'a'..='z' => Some(c as u32 - 'a' as u32),
        'A'..='Z' => Some(c as u32 - 'A' as u32),
        '0'..='9' => Some(c as u32 - '0' as u32 + 26),
        _ => None,
    }
}

/// RFC 3492 6.3: encodes `input`. Basic (ASCII) code points are copied as they are, the
/// delimiter follows them when there are any, then the deltas in lower-case digits. `None`
/// only on overflow, which no label of a real domain (63 bytes) comes near.
pub fn encode(input: &str) -> Option<String> {
    let mut output: String = input.chars().filter(char::is_ascii).collect();
    let basic = u32::try_from(output.len()).ok()?;
    let total = u32::try_from(input.chars().count()).ok()?;
    if basic > 0 {
        output.push(DELIMITER);
    }
    let (mut n, mut delta, mut bias, mut handled) = (INITIAL_N, 0u32, INITIAL_BIAS, basic);
    while handled < total {
        // The smallest code point not yet handled.
        let m = input.chars().map(u32::from).filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for c in input.chars().map(u32::from) {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = threshold(k, bias);
                    if q < t {
                        break;
                    }
                    output.push(digit_char(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                output.push(digit_char(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(output)
}

/// RFC 3492 6.2: decodes `input`. `None` for anything that is not Punycode: a non-ASCII
/// byte before the delimiter, a bad digit, a truncated number, an overflow, or a result
/// that is not a Unicode scalar value (a surrogate, beyond U+10FFFF).
pub fn decode(input: &str) -> Option<String> {
    let (basic, extended) = match input.rfind(DELIMITER) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => ("", input),
    };
    if !basic.is_ascii() {
        return None;
    }
    let mut output: Vec<char> = basic.chars().collect();
    let (mut n, mut i, mut bias) = (INITIAL_N, 0u32, INITIAL_BIAS);
    let mut digits = extended.chars();
    while digits.as_str().chars().next().is_some() {
        let old_i = i;
        let mut w = 1u32;
        let mut k = BASE;
        loop {
            let d = digit_value(digits.next()?)?;
            i = i.checked_add(d.checked_mul(w)?)?;
            let t = threshold(k, bias);
            if d < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = u32::try_from(output.len()).ok()?.checked_add(1)?;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len)?;
        i %= len;
        output.insert(i as usize, char::from_u32(n)?);
        i += 1;
    }
    Some(output.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3492 section 7.1, (A) to (S): the Unicode string and its Punycode. Upper-case
    /// digits in (I) are the RFC's mixed-case annotation, which this encoder does not make.
    const SAMPLES: &[(&str, &str)] = &[
        (
            "\u{644}\u{64a}\u{647}\u{645}\u{627}\u{628}\u{62a}\u{643}\u{644}\u{645}\u{648}\
             \u{634}\u{639}\u{631}\u{628}\u{64a}\u{61f}",
            "egbpdaj6bu4bxfgehfvwxn",
        ),
        (
            "\u{4ed6}\u{4eec}\u{4e3a}\u{4ec0}\u{4e48}\u{4e0d}\u{8bf4}\u{4e2d}\u{6587}",
            "ihqwcrb4cv8a8dqg056pqjye",
        ),
        (
            "\u{4ed6}\u{5011}\u{7232}\u{4ec0}\u{9ebd}\u{4e0d}\u{8aaa}\u{4e2d}\u{6587}",
            "ihqwctvzc91f659drss3x8bo0yb",
        ),
        (
            "Pro\u{10d}prost\u{11b}nemluv\u{ed}\u{10d}esky",
            "Proprostnemluvesky-uyb24dma41a",
        ),
        (
            "\u{5dc}\u{5de}\u{5d4}\u{5d4}\u{5dd}\u{5e4}\u{5e9}\u{5d5}\u{5d8}\u{5dc}\u{5d0}\
             \u{5de}\u{5d3}\u{5d1}\u{5e8}\u{5d9}\u{5dd}\u{5e2}\u{5d1}\u{5e8}\u{5d9}\u{5ea}",
            "4dbcagdahymbxekheh6e0a7fei0b",
        ),
        (
            "\u{92f}\u{939}\u{932}\u{94b}\u{917}\u{939}\u{93f}\u{928}\u{94d}\u{926}\u{940}\
             \u{915}\u{94d}\u{92f}\u{94b}\u{902}\u{928}\u{939}\u{940}\u{902}\u{92c}\u{94b}\
             \u{932}\u{938}\u{915}\u{924}\u{947}\u{939}\u{948}\u{902}",
            "i1baa7eci9glrd9b2ae1bj0hfcgg6iyaf8o0a1dig0cd",
        ),
        (
            "\u{306a}\u{305c}\u{307f}\u{3093}\u{306a}\u{65e5}\u{672c}\u{8a9e}\u{3092}\u{8a71}\
             \u{3057}\u{3066}\u{304f}\u{308c}\u{306a}\u{3044}\u{306e}\u{304b}",
            "n8jok5ay5dzabd5bym9f0cm5685rrjetr6pdxa",
        ),
        (
            "\u{c138}\u{acc4}\u{c758}\u{baa8}\u{b4e0}\u{c0ac}\u{b78c}\u{b4e4}\u{c774}\u{d55c}\
             \u{ad6d}\u{c5b4}\u{b97c}\u{c774}\u{d574}\u{d55c}\u{b2e4}\u{ba74}\u{c5bc}\u{b9c8}\
             \u{b098}\u{c88b}\u{c744}\u{ae4c}",
            "989aomsvi5e83db1d2a355cv1e0vak1dwrv93d5xbh15a0dt30a5jpsd879ccm6fea98c",
        ),
        (
            "\u{43f}\u{43e}\u{447}\u{435}\u{43c}\u{443}\u{436}\u{435}\u{43e}\u{43d}\u{438}\
             \u{43d}\u{435}\u{433}\u{43e}\u{432}\u{43e}\u{440}\u{44f}\u{442}\u{43f}\u{43e}\
             \u{440}\u{443}\u{441}\u{441}\u{43a}\u{438}",
            "b1abfaaepdrnnbgefbaDotcwatmq2g4l",
        ),
        (
            "Porqu\u{e9}nopuedensimplementehablarenEspa\u{f1}ol",
            "PorqunopuedensimplementehablarenEspaol-fmd56a",
        ),
        (
            "T\u{1ea1}isaoh\u{1ecd}kh\u{f4}ngth\u{1ec3}ch\u{1ec9}n\u{f3}iti\u{1ebf}ngVi\u{1ec7}t",
            "TisaohkhngthchnitingVit-kjcr8268qyxafd2f1b9g",
        ),
        (
            "3\u{5e74}B\u{7d44}\u{91d1}\u{516b}\u{5148}\u{751f}",
            "3B-ww4c5e180e575a65lsy2b",
        ),
        (
            "\u{5b89}\u{5ba4}\u{5948}\u{7f8e}\u{6075}-with-SUPER-MONKEYS",
            "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n",
        ),
        (
            "Hello-Another-Way-\u{305d}\u{308c}\u{305e}\u{308c}\u{306e}\u{5834}\u{6240}",
            "Hello-Another-Way--fc4qua05auwb3674vfr0b",
        ),
        (
            "\u{3072}\u{3068}\u{3064}\u{5c4b}\u{6839}\u{306e}\u{4e0b}2",
            "2-u9tlzr9756bt3uc0v",
        ),
        (
            "Maji\u{3067}Koi\u{3059}\u{308b}5\u{79d2}\u{524d}",
            "MajiKoi5-783gue6qz075azm5e",
        ),
        (
            "\u{30d1}\u{30d5}\u{30a3}\u{30fc}de\u{30eb}\u{30f3}\u{30d0}",
            "de-jg4avhby1noc0d",
        ),
        (
            "\u{305d}\u{306e}\u{30b9}\u{30d4}\u{30fc}\u{30c9}\u{3067}",
            "d9juau41awczczp",
        ),
        ("-> $1.00 <-", "-> $1.00 <--"),
    ];

    /// The expected encoding without mixed-case annotation: the digits after the last
    /// delimiter in lower case, the basic code points as they are.
    fn unannotated(puny: &str) -> String {
        match puny.rfind('-') {
            Some(i) => format!("{}{}", &puny[..=i], puny[i + 1..].to_ascii_lowercase()),
            None => puny.to_ascii_lowercase(),
        }
    }

    #[test]
    fn rfc_3492_samples_encode() {
        assert_eq!(SAMPLES.len(), 19, "(A) to (S)");
        for (unicode, puny) in SAMPLES {
            assert_eq!(encode(unicode).as_deref(), Some(&*unannotated(puny)));
        }
    }

    #[test]
    fn rfc_3492_samples_decode() {
        for (unicode, puny) in SAMPLES {
            assert_eq!(decode(puny).as_deref(), Some(*unicode), "{puny}");
            assert_eq!(decode(&unannotated(puny)).as_deref(), Some(*unicode));
        }
    }

    #[test]
    fn the_label_of_the_spec() {
        assert_eq!(encode("b\u{fc}cher").as_deref(), Some("bcher-kva"));
        assert_eq!(decode("bcher-kva").as_deref(), Some("b\u{fc}cher"));
        assert_eq!(encode("").as_deref(), Some(""));
        assert_eq!(encode("abc").as_deref(), Some("abc-"));
        assert_eq!(decode("abc-").as_deref(), Some("abc"));
    }

    #[test]
    fn bad_input_is_refused_not_panicked_on() {
        for bad in [
            "b\u{fc}-kva", // non-ASCII before the delimiter
            "bcher-k!a",   // not a digit
            "bcher-kv",    // a number cut short
            "99999999999", // overflow
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa9",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
