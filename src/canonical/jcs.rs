//! The RFC 8785 formatter behind [`super::to_canonical_bytes`]: `serde_json`'s serializer
//! (so every serde convention, `Option`, enums, map keys, is `serde_json`'s) with a formatter
//! that writes numbers as ECMAScript does, escapes strings minimally, and writes each object's
//! members sorted by their names' UTF-16 code units.
//!
//! Everything inside an object is written to one scratch buffer, each member's name and value
//! remembered as ranges of it; when the object ends its members are sorted and the object is
//! written, sorted, where its first member began (or to the output, for the outermost one).
//! So an object costs no allocation per member, only its list of ranges (reused).

use std::io::{self, Write};
use std::ops::Range;

use serde_json::ser::{CharEscape, Formatter};

/// One member of an object being written: its name (quoted and escaped, as written) and
/// value, as ranges of the scratch buffer.
struct Member {
    name: Range<usize>,
    value: Range<usize>,
}

/// An object being written: where its members begin in the scratch buffer, the members, and
/// where the member being written began its name and its value.
struct Object {
    start: usize,
    members: Vec<Member>,
    name: Range<usize>,
    value_start: usize,
}

/// Integers up to this magnitude are doubles exactly, and ECMAScript writes such a double as
/// the integer's decimal digits (below 10^21 it uses no exponent): written as integers.
const EXACT: u64 = 1 << 53;

/// The formatter's writers of integers. JSON's numbers are ECMAScript's doubles, so every
/// integer is written as its double is: for a magnitude up to 2^53 (every integer of 32 bits
/// or less) its digits, beyond that the double it rounds to.
macro_rules! integer_writers {
    ($($name:ident($t:ty)),* $(,)?) => {$(
        fn $name<W: ?Sized + Write>(&mut self, writer: &mut W, value: $t) -> io::Result<()> {
            match i64::try_from(value) {
                Ok(exact) if exact.unsigned_abs() <= EXACT => {
                    self.put(writer, itoa::Buffer::new().format(exact).as_bytes())
                }
                _ => self.write_f64(writer, value as f64),
            }
        }
    )*};
}

/// The buffers of one serialization, kept between serializations on a thread (see
/// [`super::to_canonical_bytes`]).
#[derive(Default)]
pub(crate) struct Buffers {
    /// Everything written inside the outermost open object.
    scratch: Vec<u8>,
    /// The open objects, innermost last.
    open: Vec<Object>,
    /// Lists of members of closed objects, for the next objects.
    spare: Vec<Vec<Member>>,
    /// Where a closed object is sorted before it replaces its members in `scratch`.
    sorted: Vec<u8>,
}

impl Buffers {
    /// Forgets what a serialization left (an error may stop one halfway), keeping the
    /// allocations unless they grew large.
    pub(crate) fn reset(&mut self) {
        const KEEP: usize = 64 << 10;
        self.open.clear();
        self.spare.truncate(16);
        if self.scratch.capacity() > KEEP || self.sorted.capacity() > KEEP {
            *self = Self::default();
        }
        self.scratch.clear();
        self.sorted.clear();
    }

    /// Writes `bytes` where the innermost open object collects them, or to `writer` outside
    /// every object.
    #[inline]
    fn put<W: ?Sized + Write>(&mut self, writer: &mut W, bytes: &[u8]) -> io::Result<()> {
        if self.open.is_empty() {
            writer.write_all(bytes)
        } else {
            self.scratch.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn innermost(&mut self) -> io::Result<&mut Object> {
        self.open.last_mut().ok_or_else(|| io::Error::other("a member outside an object"))
    }
}

/// Sorts an object's members by their names' UTF-16 code units (RFC 8785 section 3.2.3), and
/// of two members with one name keeps the first written (as `serde_json_canonicalizer` did).
/// Names without escapes and without characters outside the BMP (the usual ones) sort by their
/// bytes as written: UTF-8 orders those as UTF-16 does.
fn sort_members(scratch: &[u8], members: &mut Vec<Member>) -> io::Result<()> {
    // Between the quotes (every name is a JSON string of at least its two quotes).
    let inner = |m: &Member| &scratch[m.name.start + 1..m.name.end - 1];
    let plain = members.iter().all(|m| m.name.len() >= 2 && inner(m).iter().all(|&b| b != b'\\' && b < 0xf0));
    if plain {
        members.sort_by(|a, b| inner(a).cmp(inner(b)));
        members.dedup_by(|a, b| inner(a) == inner(b));
        return Ok(());
    }
    let mut keyed = Vec::with_capacity(members.len());
    for m in members.drain(..) {
        keyed.push((name_text(&scratch[m.name.clone()])?, m));
    }
    keyed.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    keyed.dedup_by(|(a, _), (b, _)| a == b);
    members.extend(keyed.into_iter().map(|(_, m)| m));
    Ok(())
}

/// The name of a member as written (a JSON string with its quotes), unescaped when it holds
/// an escape.
fn name_text(quoted: &[u8]) -> io::Result<std::borrow::Cow<'_, str>> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "a member name is not a JSON string");
    if quoted.len() < 2 {
        return Err(invalid());
    }
    let inner = &quoted[1..quoted.len() - 1];
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(quoted).map(Into::into).map_err(|_| invalid())
    } else {
        std::str::from_utf8(inner).map(Into::into).map_err(|_| invalid())
    }
}

/// The formatter, writing through a thread's [`Buffers`].
pub(crate) struct JcsFormatter<'a>(pub(crate) &'a mut Buffers);

impl std::ops::Deref for JcsFormatter<'_> {
    type Target = Buffers;
    fn deref(&self) -> &Buffers {
        self.0
    }
}

impl std::ops::DerefMut for JcsFormatter<'_> {
    fn deref_mut(&mut self) -> &mut Buffers {
        self.0
    }
}

impl Formatter for JcsFormatter<'_> {
    fn write_null<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"null")
    }

    fn write_bool<W: ?Sized + Write>(&mut self, writer: &mut W, value: bool) -> io::Result<()> {
        self.put(writer, if value { b"true" } else { b"false" })
    }

    integer_writers!(
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
    );

    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        if !value.is_finite() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "NaN and Infinity are not JSON"));
        }
        let mut buffer = ryu_js::Buffer::new();
        let text = buffer.format_finite(value);
        self.put(writer, text.as_bytes())
    }

    fn write_number_str<W: ?Sized + Write>(&mut self, writer: &mut W, value: &str) -> io::Result<()> {
        let number: f64 =
            value.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a number that is not a double"))?;
        self.write_f64(writer, number)
    }

    fn begin_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"\"")
    }

    fn end_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"\"")
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        self.put(writer, fragment.as_bytes())
    }

    fn write_char_escape<W: ?Sized + Write>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()> {
        let short: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            // RFC 8785 escapes no solidus ("\/" is "/").
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let long = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
                return self.put(writer, &long);
            }
        };
        self.put(writer, short)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            self.put(writer, b",")
        }
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        let members = self.spare.pop().unwrap_or_default();
        let at = self.scratch.len();
        self.open.push(Object { start: at, members, name: at..at, value_start: at });
        Ok(())
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, _writer: &mut W, _first: bool) -> io::Result<()> {
        let at = self.scratch.len();
        self.innermost()?.name = at..at;
        Ok(())
    }

    fn end_object_key<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        let at = self.scratch.len();
        self.innermost()?.name.end = at;
        Ok(())
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        let at = self.scratch.len();
        self.innermost()?.value_start = at;
        Ok(())
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        let at = self.scratch.len();
        let object = self.innermost()?;
        let member = Member { name: object.name.clone(), value: object.value_start..at };
        object.members.push(member);
        Ok(())
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        let Object { start, mut members, .. } =
            self.open.pop().ok_or_else(|| io::Error::other("an object never begun"))?;
        let buffers = &mut *self.0;
        sort_members(&buffers.scratch, &mut members)?;
        let scratch = &buffers.scratch;
        let sorted = &mut buffers.sorted;
        sorted.clear();
        sorted.push(b'{');
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                sorted.push(b',');
            }
            sorted.extend_from_slice(&scratch[m.name.clone()]);
            sorted.push(b':');
            sorted.extend_from_slice(&scratch[m.value.clone()]);
        }
        sorted.push(b'}');
        members.clear();
        buffers.spare.push(members);
        buffers.scratch.truncate(start);
        if buffers.open.is_empty() {
            writer.write_all(&buffers.sorted)
        } else {
            buffers.scratch.extend_from_slice(&buffers.sorted);
            Ok(())
        }
    }

    fn write_raw_fragment<W: ?Sized + Write>(&mut self, _writer: &mut W, _fragment: &str) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "raw JSON is not canonical"))
    }
}
