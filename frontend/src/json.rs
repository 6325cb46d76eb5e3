//! JSON read into the shared types, with less code than `serde_json` puts in the page.
//!
//! The text is parsed once into a [`Json`] tree by one small parser: a whole number that
//! fits a `u64` is read as its digits go by, any other number keeps its text until a field
//! asks for it (integers exactly, decimals by [`shared::number`], the browser's own
//! conversion in the page). Each type is then read from the tree by a
//! deserializer that gives a struct only as a map and a field name only as a string, so
//! the compiler drops the other ways serde's derived code could read them. `serde_json`
//! still writes JSON; the page carries its writer and not its reader.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

/// How deep arrays and objects may nest: deeper text is refused, not followed down the stack.
const MAX_DEPTH: usize = 128;

/// Why a text could not be read as the type asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// `text` read as a `T`.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    T::deserialize(parse(text)?)
}

/// A parsed JSON value; an object is its members in order.
#[derive(Debug, Clone, PartialEq)]
enum Json<'a> {
    Null,
    Bool(bool),
    /// A whole number from 0 to `u64::MAX`, read as it was parsed.
    Uint(u64),
    /// Any other number: its text.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

fn parse(text: &str) -> Result<Json<'_>, Error> {
    let mut parser = Parser { text, at: 0 };
    let value = parser.value(0)?;
    parser.skip_space();
    if parser.at < text.len() {
        return Err(parser.fail("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    /// The byte read next.
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// `what` with the line and column reached, counted as editors count them.
    fn fail(&self, what: &str) -> Error {
        let mut end = self.at.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &self.text[..end];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Error(format!("{what} at line {line} column {column}"))
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, Error> {
        self.skip_space();
        match self.peek() {
            None => Err(self.fail("EOF while parsing a value")),
            Some(b'n') => self.word("null", Json::Null),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(open @ (b'[' | b'{')) => {
                if depth == MAX_DEPTH {
                    return Err(self.fail("nested too deeply"));
                }
                self.at += 1;
                if open == b'[' { self.array(depth + 1) } else { self.object(depth + 1) }
            }
            Some(_) => Err(self.fail("expected value")),
        }
    }

    fn word(&mut self, word: &str, value: Json<'a>) -> Result<Json<'a>, Error> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.fail("expected value"))
        }
    }

    /// Steps over spaces, then over `byte` if it comes next: whether it did.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let next = self.peek() == Some(byte);
        if next {
            self.at += 1;
        }
        next
    }

    /// After `[`.
    fn array(&mut self, depth: usize) -> Result<Json<'a>, Error> {
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                items.push(self.value(depth)?);
                if self.after_item(b']')? {
                    break;
                }
            }
        }
        Ok(Json::Array(items))
    }

    /// After `{`.
    fn object(&mut self, depth: usize) -> Result<Json<'a>, Error> {
        let mut members = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.skip_space();
                if self.peek() != Some(b'"') {
                    return Err(self.fail("key must be a string"));
                }
                let key = self.string()?;
                if !self.eat(b':') {
                    return Err(self.fail("expected `:`"));
                }
                members.push((key, self.value(depth)?));
                if self.after_item(b'}')? {
                    break;
                }
            }
        }
        Ok(Json::Object(members))
    }

    /// Reads the `,` before another item, or `close`: whether it was `close`.
    fn after_item(&mut self, close: u8) -> Result<bool, Error> {
        if self.eat(b',') {
            Ok(false)
        } else if self.eat(close) {
            Ok(true)
        } else if self.peek().is_none() {
            Err(self.fail("EOF while parsing a list or an object"))
        } else {
            Err(self.fail(if close == b']' { "expected `,` or `]`" } else { "expected `,` or `}`" }))
        }
    }

    /// At `"`: the string, borrowed from the text where it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        self.at += 1;
        let mut start = self.at;
        // After an escape: the string up to `start`, unescaped.
        let mut unescaped: Option<String> = None;
        loop {
            match self.peek() {
                Some(b'"') => {
                    let tail = &self.text[start..self.at];
                    self.at += 1;
                    return Ok(match unescaped {
                        None => Cow::Borrowed(tail),
                        Some(mut out) => {
                            out.push_str(tail);
                            Cow::Owned(out)
                        }
                    });
                }
                Some(b'\\') => {
                    let out = unescaped.get_or_insert_with(String::new);
                    out.push_str(&self.text[start..self.at]);
                    self.at += 1;
                    out.push(self.escape()?);
                    start = self.at;
                }
                None => return Err(self.fail("EOF while parsing a string")),
                Some(0..=0x1f) => {
                    return Err(self.fail("control character (\\u0000-\\u001F) found while parsing a string"));
                }
                Some(_) => self.at += 1,
            }
        }
    }

    /// After `\`: the character the escape stands for.
    fn escape(&mut self) -> Result<char, Error> {
        let Some(c) = self.peek() else { return Err(self.fail("EOF while parsing a string")) };
        self.at += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        if !self.text[self.at..].starts_with("\\u") {
                            return Err(self.fail("lone leading surrogate in hex escape"));
                        }
                        self.at += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(self.fail("lone leading surrogate in hex escape"));
                        }
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.fail("lone trailing surrogate in hex escape")),
                    code => code,
                };
                char::from_u32(code).ok_or_else(|| self.fail("invalid unicode code point"))?
            }
            _ => {
                self.at -= 1;
                return Err(self.fail("invalid escape"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self.text.get(self.at..self.at + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let code = digits.and_then(|d| u32::from_str_radix(d, 16).ok()).ok_or_else(|| self.fail("invalid escape"))?;
        self.at += 4;
        Ok(code)
    }

    /// A number: `-`, an integer without leading zeros, then an optional fraction and
    /// exponent. A whole number that fits a `u64` is read as the digits go by; any other
    /// keeps its text.
    fn number(&mut self) -> Result<Json<'a>, Error> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let mut whole = Some(0u64);
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    whole = whole.and_then(|n| n.checked_mul(10)?.checked_add(u64::from(digit - b'0')));
                    self.at += 1;
                }
            }
            _ => return Err(self.fail("invalid number")),
        }
        let mut plain = !negative;
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
            plain = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
            plain = false;
        }
        Ok(match whole {
            Some(n) if plain => Json::Uint(n),
            _ => Json::Number(&self.text[start..self.at]),
        })
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), Error> {
        let start = self.at;
        self.digits();
        if self.at == start { Err(self.fail("invalid number")) } else { Ok(()) }
    }
}

impl Json<'_> {
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Json::Null => Unexpected::Unit,
            Json::Bool(b) => Unexpected::Bool(*b),
            Json::Uint(n) => Unexpected::Unsigned(*n),
            Json::Number(n) => Unexpected::Other(n),
            Json::String(s) => Unexpected::Str(s),
            Json::Array(_) => Unexpected::Seq,
            Json::Object(_) => Unexpected::Map,
        }
    }

    fn invalid<T>(&self, expected: &dyn de::Expected) -> Result<T, Error> {
        Err(de::Error::invalid_type(self.unexpected(), expected))
    }
}

/// The text of a number other than a [`Json::Uint`] given to `visitor` as JSON readers give
/// it: a negative whole number as a signed integer where it fits one, anything else as the
/// nearest double.
fn visit_number<'de, V: Visitor<'de>>(text: &str, visitor: V) -> Result<V::Value, Error> {
    // `-0` is the double -0, as JSON readers take it.
    if !text.contains(['.', 'e', 'E'])
        && let Ok(n) = text.parse::<i64>()
        && n != 0
    {
        return visitor.visit_i64(n);
    }
    match shared::number::parse_f64(text) {
        Some(x) if x.is_finite() => visitor.visit_f64(x),
        _ => Err(Error(format!("number out of range: {text}"))),
    }
}

/// An array's items given to `visitor`, which must take them all.
fn visit_items<'de, V: Visitor<'de>>(items: Vec<Json<'de>>, visitor: V) -> Result<V::Value, Error> {
    let mut items = de::value::SeqDeserializer::new(items.into_iter());
    let value = visitor.visit_seq(&mut items)?;
    items.end()?;
    Ok(value)
}

impl<'de> de::Deserializer<'de> for Json<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(b),
            Json::Uint(n) => visitor.visit_u64(n),
            Json::Number(n) => visit_number(n, visitor),
            Json::String(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Json::String(Cow::Owned(s)) => visitor.visit_string(s),
            Json::Array(items) => visit_items(items, visitor),
            Json::Object(members) => visitor.visit_map(Members::new(members)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_none(),
            some => visitor.visit_some(some),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Array(items) => visit_items(items, visitor),
            other => other.invalid(&visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    /// A struct only from an object: serde's derived code could also read one from an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Object(members) => visitor.visit_map(Members::new(members)),
            other => other.invalid(&visitor),
        }
    }

    /// A unit variant as its name, any other as an object of one member: the name and what
    /// the variant holds.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Json::String(name) => visitor.visit_enum(name.into_owned().into_deserializer()),
            Json::Object(mut members) if members.len() == 1 => {
                let (name, value) = members.pop().expect("one member");
                visitor.visit_enum(Variant { name, value })
            }
            other => other.invalid(&visitor),
        }
    }

    /// A field's or variant's name only from a string: serde's derived code could also take
    /// its index or its bytes.
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::String(name) => visitor.visit_str(&name),
            other => other.invalid(&visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct
    }
}

impl<'de> IntoDeserializer<'de, Error> for Json<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// An object's members, read in order.
struct Members<'a> {
    members: std::vec::IntoIter<(Cow<'a, str>, Json<'a>)>,
    value: Option<Json<'a>>,
}

impl<'a> Members<'a> {
    fn new(members: Vec<(Cow<'a, str>, Json<'a>)>) -> Self {
        Members { members: members.into_iter(), value: None }
    }
}

impl<'de> de::MapAccess<'de> for Members<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.members.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(Json::String(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.value.take().unwrap_or(Json::Null))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// A variant written as `{"name": value}`.
struct Variant<'a> {
    name: Cow<'a, str>,
    value: Json<'a>,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Json<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Json<'de>), Error> {
        Ok((seed.deserialize(Json::String(self.name))?, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Json<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self {
            Json::Null => Ok(()),
            other => other.invalid(&"a unit variant"),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    /// Reads `text` as a `T` both ways: the same value, or both refuse it.
    fn agrees<T: DeserializeOwned + PartialEq + Debug>(text: &str) {
        let ours = from_json::<T>(text);
        let theirs = serde_json::from_str::<T>(text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{text}: ours {ours:?}, serde_json's {theirs:?}"),
        }
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "1.5",
            "1e3",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "-",
            "1 2",
            " 7 ",
            "null",
            "true",
            "\"3\"",
            "[]",
            "{}",
        ] {
            agrees::<u64>(text);
            agrees::<i64>(text);
            agrees::<u32>(text);
            agrees::<f64>(text);
            agrees::<Option<f64>>(text);
        }
        for text in [
            "0.1",
            "2.5e-3",
            "-1.7976931348623157e308",
            "5e-324",
            "1e400",
            "123456789012345678901234567890",
            "9007199254740993",
            "0.30000000000000004",
        ] {
            agrees::<f64>(text);
        }
        for text in [
            r#""plain""#,
            r#""tab\there""#,
            r#""\"quoted\" \\ \/ \b\f\n\r""#,
            r#""\u00e9\u4e2d""#,
            r#""\ud83d\ude00 smile""#,
            r#""\ud83d alone""#,
            r#""\ude00""#,
            r#""\x""#,
            "\"raw\u{1}\"",
            r#""unclosed"#,
            r#""é 中 😀""#,
            "\"a\\u0041b\\nc\"",
        ] {
            agrees::<String>(text);
        }
        for text in ["[1,2,3]", "[1,,2]", "[1,2,]", "[", "[[1],[2,3]]", " [ 1 , 2 ] ", "[1 2]"] {
            agrees::<Vec<Vec<u32>>>(text);
            agrees::<Vec<u32>>(text);
        }
        for text in ["[1,null]", "[1,2.5]", "[1]", "[1,2,3]", "{\"a\":1}"] {
            agrees::<(u32, Option<f64>)>(text);
        }
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Dot,
        Line(f64),
        Box { w: u32, h: u32 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Thing {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
        size: Option<u32>,
        shape: Shape,
    }

    #[test]
    fn structs_and_enums_read_as_serde_json_reads_them() {
        for text in [
            r#"{"name":"a","size":3,"shape":"dot"}"#,
            r#"{"name":"a","tags":["x","y"],"size":null,"shape":{"line":2.5}}"#,
            r#"{"shape":{"box":{"w":1,"h":2}},"size":1,"name":"b","unknown":[1,{"deep":true}]}"#,
            r#"{"name":"a","shape":"dot"}"#,
            r#"{"name":"a","size":1}"#,
            r#"{"name":"a","size":1,"shape":"circle"}"#,
            r#"{"name":"a","size":1,"shape":{"line":2,"dot":null}}"#,
            r#"{"name":"a","size":-1,"shape":"dot"}"#,
            r#"{"name":1,"size":1,"shape":"dot"}"#,
            r#"{"name":"a" "size":1}"#,
            r#"{name:"a"}"#,
            r#"{"name":"a","size":1,"shape":"dot"} x"#,
        ] {
            agrees::<Thing>(text);
        }
        // serde_json reads a struct from an array of its fields too; the page never writes one.
        assert!(from_json::<Thing>(r#"["a",[],1,"dot"]"#).is_err());
    }

    #[test]
    fn the_shared_types_read_as_serde_json_reads_them() {
        let spec = shared::SweepSpec { model: "m".into(), prompt_lengths: vec![16, 64], ..Default::default() };
        let spec_json = serde_json::to_string(&spec.clone().generation_preset()).unwrap();
        assert_eq!(from_json::<shared::SweepSpec>(&spec_json).unwrap(), spec.clone().generation_preset());
        let run = shared::api::RunSummary::starting("r1".into(), spec, 1_764_000_000_123_456_789, true);
        let run_json = serde_json::to_string(&run).unwrap();
        assert_eq!(from_json::<shared::api::RunSummary>(&run_json).unwrap(), run, "started_unix_ns is exact");
        let error = shared::api::ApiError::new(shared::api::ErrorCode::NoRun, "there is no run r9", Some("reload"));
        let error_json = serde_json::to_string(&error).unwrap();
        assert_eq!(from_json::<shared::api::ApiError>(&error_json).unwrap(), error);
    }

    #[test]
    fn run_events_read_as_written() {
        use shared::telemetry::{MetricKind, Scrape, SeriesHead, TelemetryUpdate};
        use shared::{RunEvent, RunReport, RunStatus, SweepSpec};
        let spec = SweepSpec { prompt_lengths: vec![16, 32], concurrencies: vec![1, 2], ..Default::default() };
        let report =
            RunReport { status: RunStatus::Completed, ..RunReport::new("t".into(), spec, 1_764_000_000_000_000_001) };
        let mut events = shared::live::events_from_report("r", &report, true);
        let head = SeriesHead {
            name: "n".into(),
            family: "n".into(),
            kind: MetricKind::Gauge,
            labels: vec![("gpu".into(), "0".into())],
        };
        events.push(RunEvent::Telemetry(TelemetryUpdate {
            scrape: Some(Scrape { at_us: 5, took_us: 1500, error: Some("refused".into()) }),
            new_series: vec![head],
            values: vec![(0, Some(0.1)), (1, None)],
            dropped_series: 2,
        }));
        events.push(RunEvent::NotSaved { error: "the disk is full \u{1F4BE}".into() });
        events.push(RunEvent::Finished { status: RunStatus::Failed { error: "gone".into() }, engine: None });
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(from_json::<RunEvent>(&json).unwrap(), event, "{json}");
        }
    }

    #[test]
    fn errors_say_where() {
        let err = from_json::<Vec<u32>>("[1,\n 2,,]").unwrap_err().to_string();
        assert_eq!(err, "expected value at line 2 column 4");
        let err = from_json::<Thing>(r#"{"name":"a","size":1}"#).unwrap_err().to_string();
        assert_eq!(err, "missing field `shape`");
    }

    #[test]
    fn deep_nesting_is_refused_not_followed() {
        let deep = "[".repeat(100_000);
        assert!(from_json::<serde::de::IgnoredAny>(&deep).unwrap_err().to_string().starts_with("nested too deeply"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(from_json::<serde::de::IgnoredAny>(&ok).is_ok());
    }
}
