//! The flat `<xml><key><![CDATA[value]]></key>…</xml>` documents of WeChat Pay v2 and the QRA
//! aggregator gateways. Only that shape is accepted: nested elements, DOCTYPEs and stray text
//! are errors, so an attacker-controlled body can neither pull in entities nor smuggle a second
//! value for a field the signature does not cover.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;
use thiserror::Error;

/// Bodies larger than this are refused before parsing; real responses are under 2 KiB.
pub const MAX_XML_LEN: usize = 64 * 1024;

/// A body that is not a flat `<xml>` document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// Larger than [`MAX_XML_LEN`].
    #[error("XML body of {0} bytes is larger than any real acquirer message; refusing to parse")]
    TooLarge(usize),
    /// Not well-formed XML.
    #[error("malformed XML ({0}); treat the answer as lost and query")]
    Syntax(String),
    /// A character XML 1.0 does not allow (NUL and other control characters).
    #[error("character U+{0:04X} is not allowed in XML; treat the answer as lost and query")]
    IllegalChar(u32),
    /// An element name that no acquirer uses (they are ASCII letters, digits and `_`).
    #[error("field name {0:?} is not an acquirer field name; treat the answer as lost and query")]
    BadName(String),
    /// The root element is not `<xml>`.
    #[error("root element is <{0}>, expected <xml>")]
    UnexpectedRoot(String),
    /// A field contains child elements.
    #[error("field <{0}> contains nested elements; acquirer messages are flat")]
    Nested(String),
    /// The same field appears twice (the signature would be ambiguous).
    #[error("field <{0}> appears twice; refusing an ambiguous message")]
    Duplicate(String),
    /// A DOCTYPE declaration (entity tricks) was present.
    #[error("DOCTYPE declarations are not allowed in acquirer messages")]
    DocType,
    /// Text outside a field, or content after `</xml>`.
    #[error("unexpected content outside the fields of <xml>")]
    StrayContent,
    /// The document ended before `</xml>`.
    #[error("XML ended before </xml>; the answer was cut off, query the trade")]
    Truncated,
    /// An entity reference that is not one of the five predefined ones or a character reference.
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
}

/// Encode fields as WeChat does: every value in CDATA, in key order. A `]]>` inside a value is
/// split across two CDATA sections so it survives.
pub fn encode(fields: &BTreeMap<String, String>) -> String {
    let mut out = String::from("<xml>");
    for (k, v) in fields {
        out.push('<');
        out.push_str(k);
        out.push_str("><![CDATA[");
        out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]></");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}

/// Decode a flat `<xml>` document into its fields. Never panics; every malformation is an
/// [`XmlError`].
/// Acquirer field names are plain ASCII identifiers; anything else cannot be signed the same
/// way on both sides (found by the wechat_xml fuzz target: names with DEL and tabs).
fn field_name(raw: &[u8]) -> Result<String, XmlError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && !raw[0].is_ascii_digit();
    if ok {
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err(XmlError::BadName(
            String::from_utf8_lossy(raw).chars().take(64).collect(),
        ))
    }
}

fn is_illegal_xml_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

pub fn decode(xml: &str) -> Result<BTreeMap<String, String>, XmlError> {
    if xml.len() > MAX_XML_LEN {
        return Err(XmlError::TooLarge(xml.len()));
    }
    // XML 1.0 (§2.2) has no way to carry these, so a message holding one is not XML at all;
    // accepting it would let a field name or value that cannot be re-encoded into the
    // string that gets signed.
    if let Some(c) = xml.chars().find(|&c| is_illegal_xml_char(c)) {
        return Err(XmlError::IllegalChar(u32::from(c)));
    }
    let mut reader = Reader::from_str(xml);
    let mut fields = BTreeMap::new();
    // 0: before <xml>, 1: inside <xml>, 2: inside a field, 3: after </xml>.
    let mut depth = 0u8;
    let mut key = String::new();
    let mut value = String::new();
    let syntax = |e: &dyn std::fmt::Display| XmlError::Syntax(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| syntax(&e))?;
        match event {
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Start(start) => {
                let name = field_name(start.name().as_ref())?;
                match depth {
                    0 if name == "xml" => depth = 1,
                    0 => return Err(XmlError::UnexpectedRoot(name)),
                    1 => {
                        key = name;
                        value.clear();
                        depth = 2;
                    }
                    2 => return Err(XmlError::Nested(key)),
                    _ => return Err(XmlError::StrayContent),
                }
            }
            Event::Empty(start) => {
                let name = field_name(start.name().as_ref())?;
                match depth {
                    0 if name == "xml" => depth = 3,
                    0 => return Err(XmlError::UnexpectedRoot(name)),
                    1 => insert(&mut fields, name, String::new())?,
                    2 => return Err(XmlError::Nested(key)),
                    _ => return Err(XmlError::StrayContent),
                }
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| syntax(&e))?;
                if depth == 2 {
                    value.push_str(&text);
                } else if !text.trim().is_empty() {
                    return Err(XmlError::StrayContent);
                }
            }
            Event::CData(data) => {
                if depth != 2 {
                    return Err(XmlError::StrayContent);
                }
                let text = std::str::from_utf8(&data).map_err(|e| syntax(&e))?;
                value.push_str(text);
            }
            Event::GeneralRef(reference) => {
                if depth != 2 {
                    return Err(XmlError::StrayContent);
                }
                let resolved = match reference.resolve_char_ref() {
                    // `&#xf;` is no more allowed than a raw U+000F (XML 1.0 §4.1, WFC: Legal Character).
                    Ok(Some(c)) if is_illegal_xml_char(c) => {
                        return Err(XmlError::IllegalChar(u32::from(c)));
                    }
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference.decode().map_err(|e| syntax(&e))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::UnknownEntity(name.into_owned()))?
                            .to_owned()
                    }
                    Err(e) => return Err(syntax(&e)),
                };
                value.push_str(&resolved);
            }
            Event::End(_) => match depth {
                2 => {
                    insert(
                        &mut fields,
                        std::mem::take(&mut key),
                        std::mem::take(&mut value),
                    )?;
                    depth = 1;
                }
                1 => depth = 3,
                _ => return Err(XmlError::StrayContent),
            },
            Event::Eof => {
                return if depth == 3 {
                    Ok(fields)
                } else {
                    Err(XmlError::Truncated)
                };
            }
        }
    }
}

fn insert(
    fields: &mut BTreeMap<String, String>,
    key: String,
    value: String,
) -> Result<(), XmlError> {
    if fields.contains_key(&key) {
        return Err(XmlError::Duplicate(key));
    }
    fields.insert(key, value);
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_nul_inside_a_field_name_is_refused_not_carried_into_the_signature() {
        // Found by the wechat_xml fuzz target: decode accepted it, encode could not round-trip it.
        let r = decode("<xml><ret\u{0}urn>x</ret\u{0}urn></xml>");
        assert!(matches!(r, Err(XmlError::IllegalChar(0))), "{r:?}");
        assert!(matches!(
            decode("<xml><a>\u{1b}</a></xml>"),
            Err(XmlError::IllegalChar(0x1b))
        ));
        assert!(decode("<xml><a>tab\tand\nnewline</a></xml>").is_ok());
        // A character reference to one is refused too (the third).
        assert!(matches!(
            decode("<xml><a>x&#xf;y</a></xml>"),
            Err(XmlError::IllegalChar(0xf))
        ));
        // And a name with DEL in it, the second fuzz find.
        assert!(matches!(
            decode("<xml><ret\u{7f}urn>x</ret\u{7f}urn></xml>"),
            Err(XmlError::BadName(_))
        ));
    }
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_micropay_body_round_trips_including_awkward_values() {
        let fields = map(&[
            ("body", "面包 & <牛奶>"),
            ("attach", "a]]>b"),
            ("total_fee", "1"),
        ]);
        let xml = encode(&fields);
        assert!(xml.starts_with("<xml><attach><![CDATA["));
        assert_eq!(decode(&xml).unwrap(), fields);
    }

    #[test]
    fn plain_text_values_and_entities_are_read_like_wechat_sends_them() {
        let xml = "<?xml version=\"1.0\"?>\n<xml>\n  <return_code>SUCCESS</return_code>\n  <return_msg>a&amp;b&#x4e2d;</return_msg>\n  <sub_mch_id/>\n</xml>\n";
        assert_eq!(
            decode(xml).unwrap(),
            map(&[
                ("return_code", "SUCCESS"),
                ("return_msg", "a&b中"),
                ("sub_mch_id", "")
            ])
        );
    }

    #[test]
    fn hostile_or_broken_bodies_are_typed_errors() {
        assert_eq!(
            decode("<!DOCTYPE x [<!ENTITY a 'b'>]><xml><a>&a;</a></xml>"),
            Err(XmlError::DocType)
        );
        assert!(matches!(
            decode("<root/>"),
            Err(XmlError::UnexpectedRoot(_))
        ));
        assert!(matches!(
            decode("<xml><a><b>1</b></a></xml>"),
            Err(XmlError::Nested(_))
        ));
        assert!(matches!(
            decode("<xml><a>1</a><a>2</a></xml>"),
            Err(XmlError::Duplicate(_))
        ));
        assert_eq!(decode("<xml><a>1</a>"), Err(XmlError::Truncated));
        assert_eq!(decode(""), Err(XmlError::Truncated));
        assert!(matches!(
            decode("<xml><a>&foo;</a></xml>"),
            Err(XmlError::UnknownEntity(_))
        ));
        assert!(decode("<xml><a>1</b></xml>").is_err());
        assert_eq!(decode("<xml></xml>junk"), Err(XmlError::StrayContent));
        assert!(matches!(
            decode(&"x".repeat(MAX_XML_LEN + 1)),
            Err(XmlError::TooLarge(_))
        ));
    }
}
