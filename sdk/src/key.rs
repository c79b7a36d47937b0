use std::borrow::Cow;

/// Something that keys state, timers, dimension rows and emitted rows.
/// Encoded as bytes: strings as UTF-8, integers as decimal text (so keys
/// read the same in the console, Kafka and SQL), tuples joined by `|` with
/// `|` and `\` inside a part escaped by `\`, so distinct tuples never share
/// a key.
pub trait Key {
    fn key_bytes(&self) -> Cow<'_, [u8]>;
}

impl Key for str {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl Key for String {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl Key for [u8] {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl Key for Vec<u8> {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<K: Key + ?Sized> Key for &K {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        (**self).key_bytes()
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl Key for $t {
            fn key_bytes(&self) -> Cow<'_, [u8]> {
                // `itoa` rather than `to_string`: the same text without the
                // formatting machinery (ids key most state, once or more per
                // record).
                Cow::Owned(itoa::Buffer::new().format(*self).as_bytes().to_vec())
            }
        }
    )*};
}
integer_keys!(i32, i64, u32, u64, usize);

impl<A: Key, B: Key> Key for (A, B) {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        let (a, b) = (self.0.key_bytes(), self.1.key_bytes());
        let mut out = Vec::with_capacity(a.len() + b.len() + 1);
        escape_into(&mut out, &a);
        out.push(b'|');
        escape_into(&mut out, &b);
        Cow::Owned(out)
    }
}

fn escape_into(out: &mut Vec<u8>, part: &[u8]) {
    if !part.iter().any(|&b| b == b'|' || b == b'\\') {
        out.extend_from_slice(part);
        return;
    }
    for &byte in part {
        if byte == b'|' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_their_decimal_text() {
        for n in [0, 7, -7, i64::MIN, i64::MAX] {
            assert_eq!(n.key_bytes().as_ref(), n.to_string().as_bytes());
        }
        assert_eq!(u64::MAX.key_bytes().as_ref(), u64::MAX.to_string().as_bytes());
        assert_eq!(usize::MAX.key_bytes().as_ref(), usize::MAX.to_string().as_bytes());
    }

    #[test]
    fn tuple_parts_are_escaped_only_where_needed() {
        assert_eq!(("a", 1i64).key_bytes().as_ref(), b"a|1");
        assert_eq!(("a|b", "c\\").key_bytes().as_ref(), b"a\\|b|c\\\\");
        assert_ne!(("a|", "b").key_bytes(), ("a", "|b").key_bytes());
    }
}
