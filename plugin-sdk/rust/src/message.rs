//! One delivered message, read through the host's accessors.
use std::borrow::Cow;
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::time::Duration;

use crate::ffi;

/// Message properties (the header's FOXW_PROP_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Property {
    ContentType = ffi::FOXW_PROP_CONTENT_TYPE,
    ContentEncoding = ffi::FOXW_PROP_CONTENT_ENCODING,
    MessageType = ffi::FOXW_PROP_MESSAGE_TYPE,
    CorrelationId = ffi::FOXW_PROP_CORRELATION_ID,
    ReplyTo = ffi::FOXW_PROP_REPLY_TO,
    AppId = ffi::FOXW_PROP_APP_ID,
    UserId = ffi::FOXW_PROP_USER_ID,
    Expiration = ffi::FOXW_PROP_EXPIRATION,
    MessageId = ffi::FOXW_PROP_MESSAGE_ID,
    /// AMQP's cluster-id (ABI 1.1; empty on a 1.0 daemon).
    ClusterId = ffi::FOXW_PROP_CLUSTER_ID,
}

/// A numeric property, read as the producer sent it (ABI 1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum NumericProperty {
    /// Unclamped: a Redis `priority` field of 300 reads 300.
    Priority = ffi::FOXW_PROP_PRIORITY,
    /// Unix milliseconds (AMQP sends seconds).
    TimestampMs = ffi::FOXW_PROP_TIMESTAMP_MS,
    /// AMQP: 1 transient, 2 persistent.
    DeliveryMode = ffi::FOXW_PROP_DELIVERY_MODE,
}

/// The type a header was sent with (ABI 1.1). Its value reads as text either
/// way; Redis fields and local headers are always `String`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderType {
    String,
    /// AMQP void: its value is empty, like an empty string's.
    Null,
    Bool,
    Int,
    Float,
    Decimal,
    Timestamp,
    Bytes,
    Table,
    Array,
}

/// One message, borrowed for the handler call. Text accessors return
/// `Cow<str>`: borrowed when the bytes are UTF-8, replaced (U+FFFD)
/// otherwise; the `_bytes` variants return the bytes as they are.
pub struct Message<'a> {
    host: &'static ffi::foxw_host_api,
    raw: *const ffi::foxw_message,
    _borrow: PhantomData<&'a ffi::foxw_message>,
}

// The host's message accessors may be called from any thread while the
// message is valid, which the lifetime bounds.
unsafe impl Send for Message<'_> {}
unsafe impl Sync for Message<'_> {}

impl<'a> Message<'a> {
    /// # Safety
    /// `raw` must be a message the host handed to a handler, valid for `'a`.
    pub unsafe fn from_raw(host: &'static ffi::foxw_host_api, raw: *const ffi::foxw_message) -> Message<'a> {
        Message {
            host,
            raw,
            _borrow: PhantomData,
        }
    }

    /// The message for raw host services.
    pub fn as_raw(&self) -> *const ffi::foxw_message {
        self.raw
    }

    fn string(&self, f: Option<unsafe extern "C" fn(*const ffi::foxw_message) -> ffi::foxw_str>) -> &'a [u8] {
        match f {
            Some(f) => unsafe { bytes(f(self.raw)) },
            None => &[],
        }
    }

    pub fn id(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.string(self.host.msg_id))
    }

    /// The queue (from the daemon's config) it was delivered on.
    pub fn queue(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.string(self.host.msg_queue))
    }

    pub fn payload(&self) -> &'a [u8] {
        self.string(self.host.msg_payload)
    }

    /// The payload as UTF-8 text.
    pub fn payload_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.payload())
    }

    /// A property; empty when unset.
    pub fn property(&self, property: Property) -> Cow<'a, str> {
        String::from_utf8_lossy(self.property_bytes(property))
    }

    pub fn property_bytes(&self, property: Property) -> &'a [u8] {
        match self.host.msg_property {
            Some(f) => unsafe { bytes(f(self.raw, property as i32)) },
            None => &[],
        }
    }

    /// The message type property: what routes it to a handler.
    pub fn message_type(&self) -> Cow<'a, str> {
        self.property(Property::MessageType)
    }

    /// A numeric property as the producer sent it: `None` when it was not
    /// set (so 0 sent and nothing sent differ), or on a 1.0 daemon.
    pub fn property_int(&self, property: NumericProperty) -> Option<i64> {
        if self.host.struct_size < ffi::FOXW_HOST_API_SIZE_1_1 {
            return None;
        }
        let f = self.host.msg_property_int?;
        let mut value = 0i64;
        if unsafe { f(self.raw, property as i32, &mut value) } {
            Some(value)
        } else {
            None
        }
    }

    /// The type header `index` was sent with; `None` past the end. On a 1.0
    /// daemon every header reads as `String`.
    pub fn header_type(&self, index: usize) -> Option<HeaderType> {
        let count = self.host.msg_header_count.map_or(0, |f| unsafe { f(self.raw) });
        if index >= count {
            return None;
        }
        if self.host.struct_size < ffi::FOXW_HOST_API_SIZE_1_1 {
            return Some(HeaderType::String);
        }
        let kind = self
            .host
            .msg_header_type
            .map_or(ffi::FOXW_HEADER_STRING, |f| unsafe { f(self.raw, index) });
        Some(match kind {
            ffi::FOXW_HEADER_NONE => return None,
            ffi::FOXW_HEADER_NULL => HeaderType::Null,
            ffi::FOXW_HEADER_BOOL => HeaderType::Bool,
            ffi::FOXW_HEADER_INT => HeaderType::Int,
            ffi::FOXW_HEADER_FLOAT => HeaderType::Float,
            ffi::FOXW_HEADER_DECIMAL => HeaderType::Decimal,
            ffi::FOXW_HEADER_TIMESTAMP => HeaderType::Timestamp,
            ffi::FOXW_HEADER_BYTES => HeaderType::Bytes,
            ffi::FOXW_HEADER_TABLE => HeaderType::Table,
            ffi::FOXW_HEADER_ARRAY => HeaderType::Array,
            _ => HeaderType::String,
        })
    }

    pub fn priority(&self) -> u8 {
        self.host.msg_priority.map_or(0, |f| unsafe { f(self.raw) })
    }

    /// The producer's timestamp, milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.host
            .msg_timestamp_ms
            .map(|f| unsafe { f(self.raw) })
            .filter(|&t| t != 0)
    }

    /// When the message was first enqueued, milliseconds since the Unix epoch.
    pub fn enqueued_at_ms(&self) -> Option<i64> {
        self.host
            .msg_enqueued_at_ms
            .map(|f| unsafe { f(self.raw) })
            .filter(|&t| t != 0)
    }

    /// This delivery's attempt, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.host.msg_attempt.map_or(1, |f| unsafe { f(self.raw) })
    }

    /// A header by exact name. Nested values (AMQP tables, arrays) read as JSON.
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        self.header_bytes(name).map(String::from_utf8_lossy)
    }

    pub fn header_bytes(&self, name: &str) -> Option<&'a [u8]> {
        let f = self.host.msg_header?;
        let mut value = ffi::foxw_str::EMPTY;
        let found = unsafe { f(self.raw, name.as_ptr() as *const c_char, name.len(), &mut value) };
        if found {
            Some(unsafe { bytes(value) })
        } else {
            None
        }
    }

    /// Every header, in order.
    pub fn headers(&self) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
        let (count, at) = match (self.host.msg_header_count, self.host.msg_header_at) {
            (Some(count), Some(at)) => (unsafe { count(self.raw) }, at),
            _ => return Vec::new(),
        };
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let mut name = ffi::foxw_str::EMPTY;
            let mut value = ffi::foxw_str::EMPTY;
            if unsafe { at(self.raw, i, &mut name, &mut value) } {
                unsafe {
                    out.push((
                        String::from_utf8_lossy(bytes(name)),
                        String::from_utf8_lossy(bytes(value)),
                    ));
                }
            }
        }
        out
    }

    /// The deadline on the daemon's monotonic clock
    /// ([`crate::Context::monotonic_ns`]); `None` when there is none.
    pub fn deadline_ns(&self) -> Option<u64> {
        self.host
            .msg_deadline_ns
            .map(|f| unsafe { f(self.raw) })
            .filter(|&d| d != u64::MAX)
    }

    /// The time left before the deadline (zero once it passed); `None` when
    /// there is no deadline.
    pub fn time_left(&self) -> Option<Duration> {
        let deadline = self.deadline_ns()?;
        let now = self.host.monotonic_ns.map_or(0, |f| unsafe { f() });
        Some(Duration::from_nanos(deadline.saturating_sub(now)))
    }

    /// True once the deadline passed or the daemon gave up on the message: a
    /// long handler should poll it and return.
    pub fn cancelled(&self) -> bool {
        self.host.msg_cancelled.map_or(false, |f| unsafe { f(self.raw) })
    }
}

/// The bytes of a host-owned string.
///
/// # Safety
/// `s` must point to `len` readable bytes for `'a` (or be NULL with len 0).
pub(crate) unsafe fn bytes<'a>(s: ffi::foxw_str) -> &'a [u8] {
    if s.ptr.is_null() || s.len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(s.ptr as *const u8, s.len)
    }
}

/// The NUL-terminated text in an error buffer the host filled.
pub(crate) fn c_buffer_text(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
