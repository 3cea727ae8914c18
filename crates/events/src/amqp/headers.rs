//! AMQP message headers as the bridge reads and writes them: text values,
//! in either AMQP string type (publishers use both).

use lapin::BasicProperties;
use lapin::types::AMQPValue;

/// A header's text, or `None` when it is absent or not text.
pub fn text<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a str> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// `properties` with `headers` added to (or replacing) its headers.
pub fn with_headers(properties: BasicProperties, headers: &[(&str, String)]) -> BasicProperties {
    let mut table = properties.headers().clone().unwrap_or_default();
    for (name, value) in headers {
        table.insert((*name).into(), AMQPValue::LongString(value.clone().into()));
    }
    properties.with_headers(table)
}
