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
                Cow::Owned(self.to_string().into_bytes())
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
    for &byte in part {
        if byte == b'|' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
}
