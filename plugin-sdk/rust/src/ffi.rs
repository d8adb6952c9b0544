//! The plugin ABI 1.1, mirrored by hand from
//! `plugin-sdk/include/foxworker/plugin.h` (the contract: read it for the
//! ownership and thread rules of every field). Names and layouts are the
//! header's; a nullable C function pointer is an `Option<unsafe extern "C"
//! fn>`, which has the same layout.
//!
//! Nothing here is safe to use without reading the header. The safe layer is
//! the rest of this crate.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

pub const FOXW_ABI_MAJOR: u16 = 1;
pub const FOXW_ABI_MINOR: u16 = 1;
/// The oldest host minor a plugin built with this crate needs. The crate
/// checks `struct_size` before every 1.1 service, so it targets 1.0.
pub const FOXW_TARGET_ABI_MINOR: u16 = 0;

/// "FOXWPLUG" in ASCII.
pub const FOXW_PLUGIN_MAGIC_VALUE: u64 = 0x464f_5857_504c_5547;

pub const FOXW_MAGIC_SYMBOL: &str = "foxworker_plugin_magic";
pub const FOXW_INIT_V1_SYMBOL: &str = "foxworker_plugin_init_v1";

// ---- opaque host handles --------------------------------------------------

/// One delivered message (host-owned).
#[repr(C)]
pub struct foxw_message {
    _private: [u8; 0],
}
/// The host's record of one loaded plugin (host-owned).
#[repr(C)]
pub struct foxw_plugin_ctx {
    _private: [u8; 0],
}
/// A metric the plugin defined (host-owned).
#[repr(C)]
pub struct foxw_metric {
    _private: [u8; 0],
}

/// A byte string: a fixed pair, frozen. `ptr` may be NULL only when `len`
/// is 0. Not NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct foxw_str {
    pub ptr: *const c_char,
    pub len: usize,
}

impl foxw_str {
    pub const EMPTY: foxw_str = foxw_str {
        ptr: std::ptr::null(),
        len: 0,
    };
}

// ---- verdicts --------------------------------------------------------------

pub type foxw_verdict = i32;
pub const FOXW_ACK: foxw_verdict = 1;
pub const FOXW_RETRY: foxw_verdict = 2;
pub const FOXW_REJECT: foxw_verdict = 3;
pub const FOXW_PENDING: foxw_verdict = 4;

/// Where a handler writes its reason and retry hint. Host-owned.
#[repr(C)]
pub struct foxw_outcome {
    pub struct_size: usize,
    pub reason: *mut c_char,
    pub reason_cap: usize,
    pub reason_len: usize,
    pub retry_delay_ms: u64,
}

// ---- enums (C enums are int-sized: i32 constants here) -----------------------

pub type foxw_property = i32;
pub const FOXW_PROP_CONTENT_TYPE: foxw_property = 1;
pub const FOXW_PROP_CONTENT_ENCODING: foxw_property = 2;
pub const FOXW_PROP_MESSAGE_TYPE: foxw_property = 3;
pub const FOXW_PROP_CORRELATION_ID: foxw_property = 4;
pub const FOXW_PROP_REPLY_TO: foxw_property = 5;
pub const FOXW_PROP_APP_ID: foxw_property = 6;
pub const FOXW_PROP_USER_ID: foxw_property = 7;
pub const FOXW_PROP_EXPIRATION: foxw_property = 8;
pub const FOXW_PROP_MESSAGE_ID: foxw_property = 9;
// 1.1:
pub const FOXW_PROP_CLUSTER_ID: foxw_property = 10;
pub const FOXW_PROP_PRIORITY: foxw_property = 11;
pub const FOXW_PROP_TIMESTAMP_MS: foxw_property = 12;
pub const FOXW_PROP_DELIVERY_MODE: foxw_property = 13;

// 1.1: the type a header was sent with (host.msg_header_type).
pub type foxw_header_type = i32;
pub const FOXW_HEADER_NONE: foxw_header_type = 0;
pub const FOXW_HEADER_STRING: foxw_header_type = 1;
pub const FOXW_HEADER_NULL: foxw_header_type = 2;
pub const FOXW_HEADER_BOOL: foxw_header_type = 3;
pub const FOXW_HEADER_INT: foxw_header_type = 4;
pub const FOXW_HEADER_FLOAT: foxw_header_type = 5;
pub const FOXW_HEADER_DECIMAL: foxw_header_type = 6;
pub const FOXW_HEADER_TIMESTAMP: foxw_header_type = 7;
pub const FOXW_HEADER_BYTES: foxw_header_type = 8;
pub const FOXW_HEADER_TABLE: foxw_header_type = 9;
pub const FOXW_HEADER_ARRAY: foxw_header_type = 10;

pub type foxw_log_level = i32;
pub const FOXW_LOG_TRACE: foxw_log_level = 0;
pub const FOXW_LOG_DEBUG: foxw_log_level = 1;
pub const FOXW_LOG_INFO: foxw_log_level = 2;
pub const FOXW_LOG_WARN: foxw_log_level = 3;
pub const FOXW_LOG_ERROR: foxw_log_level = 4;

pub type foxw_metric_kind = i32;
pub const FOXW_METRIC_COUNTER: foxw_metric_kind = 1;
pub const FOXW_METRIC_GAUGE: foxw_metric_kind = 2;
pub const FOXW_METRIC_HISTOGRAM: foxw_metric_kind = 3;

// ---- publishing ------------------------------------------------------------

/// A header name and value: a fixed pair, frozen.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct foxw_header {
    pub name: foxw_str,
    pub value: foxw_str,
}

/// Filled by the plugin for `host.publish`; read only during the call.
#[repr(C)]
pub struct foxw_publish {
    pub struct_size: usize,
    pub queue: foxw_str,
    pub payload: foxw_str,
    pub message_type: foxw_str,
    pub content_type: foxw_str,
    pub correlation_id: foxw_str,
    pub headers: *const foxw_header,
    pub header_count: usize,
    pub priority: u8,
    pub delay_ms: u64,
    // 1.1 (a 1.0 host reads only FOXW_PUBLISH_SIZE_1_0 bytes):
    pub message_id: foxw_str,
    pub app_id: foxw_str,
    pub content_encoding: foxw_str,
}

pub const FOXW_CONFIG_OK: i32 = 0;
pub const FOXW_CONFIG_ABSENT: i32 = 1;
pub const FOXW_CONFIG_WRONG_TYPE: i32 = 2;

// ---- host services -----------------------------------------------------------

/// The host's services table: append-only. Host-owned and static.
#[repr(C)]
pub struct foxw_host_api {
    pub struct_size: usize,
    pub abi_major: u16,
    pub abi_minor: u16,

    pub log_enabled: Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, level: i32) -> bool>,
    pub log: Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, level: i32, text: *const c_char, len: usize)>,

    pub metric_define: Option<
        unsafe extern "C" fn(
            ctx: *mut foxw_plugin_ctx,
            kind: i32,
            name: *const c_char,
            help: *const c_char,
            err: *mut c_char,
            err_cap: usize,
        ) -> *mut foxw_metric,
    >,
    pub metric_update: Option<unsafe extern "C" fn(metric: *mut foxw_metric, value: f64)>,

    pub monotonic_ns: Option<unsafe extern "C" fn() -> u64>,
    pub wall_time_ms: Option<unsafe extern "C" fn() -> i64>,

    pub msg_id: Option<unsafe extern "C" fn(msg: *const foxw_message) -> foxw_str>,
    pub msg_queue: Option<unsafe extern "C" fn(msg: *const foxw_message) -> foxw_str>,
    pub msg_payload: Option<unsafe extern "C" fn(msg: *const foxw_message) -> foxw_str>,
    pub msg_property: Option<unsafe extern "C" fn(msg: *const foxw_message, property: i32) -> foxw_str>,
    pub msg_priority: Option<unsafe extern "C" fn(msg: *const foxw_message) -> u8>,
    pub msg_timestamp_ms: Option<unsafe extern "C" fn(msg: *const foxw_message) -> i64>,
    pub msg_enqueued_at_ms: Option<unsafe extern "C" fn(msg: *const foxw_message) -> i64>,
    pub msg_attempt: Option<unsafe extern "C" fn(msg: *const foxw_message) -> u32>,
    pub msg_header: Option<
        unsafe extern "C" fn(
            msg: *const foxw_message,
            name: *const c_char,
            name_len: usize,
            value: *mut foxw_str,
        ) -> bool,
    >,
    pub msg_header_count: Option<unsafe extern "C" fn(msg: *const foxw_message) -> usize>,
    pub msg_header_at: Option<
        unsafe extern "C" fn(msg: *const foxw_message, index: usize, name: *mut foxw_str, value: *mut foxw_str) -> bool,
    >,
    pub msg_deadline_ns: Option<unsafe extern "C" fn(msg: *const foxw_message) -> u64>,
    pub msg_cancelled: Option<unsafe extern "C" fn(msg: *const foxw_message) -> bool>,

    pub complete: Option<
        unsafe extern "C" fn(
            msg: *const foxw_message,
            verdict: foxw_verdict,
            reason: *const c_char,
            reason_len: usize,
            retry_delay_ms: u64,
        ) -> i32,
    >,

    pub publish: Option<
        unsafe extern "C" fn(
            ctx: *mut foxw_plugin_ctx,
            parent: *const foxw_message,
            publish: *const foxw_publish,
            err: *mut c_char,
            err_cap: usize,
        ) -> i32,
    >,

    pub config_string:
        Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, key: *const c_char, value: *mut foxw_str) -> i32>,
    pub config_int:
        Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, key: *const c_char, value: *mut i64) -> i32>,
    pub config_double:
        Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, key: *const c_char, value: *mut f64) -> i32>,
    pub config_bool:
        Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, key: *const c_char, value: *mut bool) -> i32>,
    pub config_duration_ms:
        Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, key: *const c_char, value: *mut u64) -> i32>,
    pub config_count:
        Option<unsafe extern "C" fn(ctx: *const foxw_plugin_ctx, key: *const c_char, count: *mut usize) -> i32>,
    pub config_item: Option<
        unsafe extern "C" fn(
            ctx: *const foxw_plugin_ctx,
            key: *const c_char,
            index: usize,
            name: *mut foxw_str,
            value: *mut foxw_str,
        ) -> i32,
    >,

    // 1.1: read only when struct_size >= FOXW_HOST_API_SIZE_1_1.
    pub msg_property_int:
        Option<unsafe extern "C" fn(msg: *const foxw_message, property: i32, value: *mut i64) -> bool>,
    pub msg_header_type: Option<unsafe extern "C" fn(msg: *const foxw_message, index: usize) -> i32>,
}

// ---- what the plugin declares --------------------------------------------------

pub type foxw_config_type = i32;
pub const FOXW_CONFIG_STRING: foxw_config_type = 1;
pub const FOXW_CONFIG_INT: foxw_config_type = 2;
pub const FOXW_CONFIG_DOUBLE: foxw_config_type = 3;
pub const FOXW_CONFIG_BOOL: foxw_config_type = 4;
pub const FOXW_CONFIG_DURATION: foxw_config_type = 5;
pub const FOXW_CONFIG_STRING_LIST: foxw_config_type = 6;
pub const FOXW_CONFIG_MAP: foxw_config_type = 7;

/// One config key. Plugin-owned (static), with NUL-terminated strings.
#[repr(C)]
pub struct foxw_config_key {
    pub struct_size: usize,
    pub name: *const c_char,
    pub type_: i32,
    pub required: bool,
    pub default_value: *const c_char,
    pub description: *const c_char,
}

/// Returned by `foxworker_plugin_magic()`. Plugin-owned and static.
#[repr(C)]
pub struct foxw_plugin_info {
    pub struct_size: usize,
    pub magic: u64,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub sdk_minor: u16,
    pub reserved: u16,
    pub name: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
    pub config_schema: *const foxw_config_key,
    pub config_key_count: usize,
    pub config_key_size: usize,
}

pub const FOXW_INSTANCE_PER_SLOT: u32 = 0;
pub const FOXW_INSTANCE_SHARED: u32 = 1;
pub const FOXW_INSTANCE_PER_THREAD: u32 = 2;

pub type foxw_handle_fn =
    unsafe extern "C" fn(instance: *mut c_void, msg: *const foxw_message, out: *mut foxw_outcome) -> foxw_verdict;

pub type foxw_handle_batch_fn = unsafe extern "C" fn(
    instance: *mut c_void,
    msgs: *const *const foxw_message,
    count: usize,
    verdicts: *mut foxw_verdict,
    outs: *const *mut foxw_outcome,
);

/// One handler. Plugin-owned (static), `name` NUL-terminated.
#[repr(C)]
pub struct foxw_handler_def {
    pub struct_size: usize,
    pub name: *const c_char,
    pub handle: Option<foxw_handle_fn>,
    pub handle_batch: Option<foxw_handle_batch_fn>,
    pub flags: u32,
    pub reserved: u32,
}

/// Returned by `foxworker_plugin_init_v1()`. Plugin-owned.
#[repr(C)]
pub struct foxw_plugin_v1 {
    pub struct_size: usize,
    pub instance_model: u32,
    pub flags: u32,
    pub handlers: *const foxw_handler_def,
    pub handler_count: usize,
    pub handler_size: usize,
    pub create: Option<
        unsafe extern "C" fn(
            ctx: *mut foxw_plugin_ctx,
            config_json: *const c_char,
            config_len: usize,
            instance: *mut *mut c_void,
            err: *mut c_char,
            err_cap: usize,
        ) -> i32,
    >,
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    pub shutdown: Option<unsafe extern "C" fn(ctx: *mut foxw_plugin_ctx)>,
}

pub type foxw_magic_fn = unsafe extern "C" fn() -> *const foxw_plugin_info;
pub type foxw_init_v1_fn = unsafe extern "C" fn(
    host: *const foxw_host_api,
    ctx: *mut foxw_plugin_ctx,
    err: *mut c_char,
    err_cap: usize,
) -> *const foxw_plugin_v1;

// The declarations the plugin hands the host are immutable tables of
// pointers to static data (strings, functions, other tables): sharing them
// between threads is sound, and they must be `Sync` to live in statics.
unsafe impl Sync for foxw_config_key {}
unsafe impl Sync for foxw_plugin_info {}
unsafe impl Sync for foxw_handler_def {}
unsafe impl Sync for foxw_plugin_v1 {}

// ---- frozen 1.0 sizes ----------------------------------------------------------
//
// plugin.h defines them as FOXW_END_OF(type, last 1.0 field). offset_of! is
// newer than the Rust this crate supports, so the C layout rule is applied
// here to the 1.0 field list (size and alignment of each field, in order).
// These lists never change, like the C constants; the structs above may grow.

const fn field<T>() -> (usize, usize) {
    (std::mem::size_of::<T>(), std::mem::align_of::<T>())
}

/// The end of the last field of a C struct with these fields, in order.
const fn end_of_last(fields: &[(usize, usize)]) -> usize {
    let mut end = 0;
    let mut i = 0;
    while i < fields.len() {
        let (size, align) = fields[i];
        end = (end + align - 1) / align * align + size;
        i += 1;
    }
    end
}

type Ptr = *const c_void;
type FnPtr = Option<unsafe extern "C" fn()>;

pub const FOXW_OUTCOME_SIZE_1_0: usize = end_of_last(&[
    field::<usize>(),
    field::<Ptr>(),
    field::<usize>(),
    field::<usize>(),
    field::<u64>(),
]);
pub const FOXW_PUBLISH_SIZE_1_0: usize = end_of_last(&[
    field::<usize>(),
    field::<foxw_str>(),
    field::<foxw_str>(),
    field::<foxw_str>(),
    field::<foxw_str>(),
    field::<foxw_str>(),
    field::<Ptr>(),
    field::<usize>(),
    field::<u8>(),
    field::<u64>(),
]);
/// struct_size, abi_major, abi_minor, then 28 services.
pub const FOXW_HOST_API_SIZE_1_0: usize = {
    let head = end_of_last(&[field::<usize>(), field::<u16>(), field::<u16>()]);
    let align = std::mem::align_of::<FnPtr>();
    (head + align - 1) / align * align + 28 * std::mem::size_of::<FnPtr>()
};
/// 1.1 grew two structs: the host table by two services, the publish
/// request by three strings.
pub const FOXW_HOST_API_SIZE_1_1: usize = FOXW_HOST_API_SIZE_1_0 + 2 * std::mem::size_of::<FnPtr>();
pub const FOXW_PUBLISH_SIZE_1_1: usize = {
    let align = std::mem::align_of::<foxw_str>();
    (FOXW_PUBLISH_SIZE_1_0 + align - 1) / align * align + 3 * std::mem::size_of::<foxw_str>()
};
pub const FOXW_CONFIG_KEY_SIZE_1_0: usize = end_of_last(&[
    field::<usize>(),
    field::<Ptr>(),
    field::<i32>(),
    field::<bool>(),
    field::<Ptr>(),
    field::<Ptr>(),
]);
pub const FOXW_PLUGIN_INFO_SIZE_1_0: usize = end_of_last(&[
    field::<usize>(),
    field::<u64>(),
    field::<u16>(),
    field::<u16>(),
    field::<u16>(),
    field::<u16>(),
    field::<Ptr>(),
    field::<Ptr>(),
    field::<Ptr>(),
    field::<Ptr>(),
    field::<usize>(),
    field::<usize>(),
]);
pub const FOXW_HANDLER_DEF_SIZE_1_0: usize = end_of_last(&[
    field::<usize>(),
    field::<Ptr>(),
    field::<FnPtr>(),
    field::<FnPtr>(),
    field::<u32>(),
    field::<u32>(),
]);
pub const FOXW_PLUGIN_V1_SIZE_1_0: usize = end_of_last(&[
    field::<usize>(),
    field::<u32>(),
    field::<u32>(),
    field::<Ptr>(),
    field::<usize>(),
    field::<usize>(),
    field::<FnPtr>(),
    field::<FnPtr>(),
    field::<FnPtr>(),
]);

// The structs above are the 1.1 layouts, which end without trailing padding;
// those 1.1 did not grow are still their frozen 1.0 sizes.
const _: () = assert!(std::mem::size_of::<foxw_outcome>() == FOXW_OUTCOME_SIZE_1_0);
const _: () = assert!(std::mem::size_of::<foxw_publish>() == FOXW_PUBLISH_SIZE_1_1);
const _: () = assert!(std::mem::size_of::<foxw_host_api>() == FOXW_HOST_API_SIZE_1_1);
const _: () = assert!(std::mem::size_of::<foxw_config_key>() == FOXW_CONFIG_KEY_SIZE_1_0);
const _: () = assert!(std::mem::size_of::<foxw_plugin_info>() == FOXW_PLUGIN_INFO_SIZE_1_0);
const _: () = assert!(std::mem::size_of::<foxw_handler_def>() == FOXW_HANDLER_DEF_SIZE_1_0);
const _: () = assert!(std::mem::size_of::<foxw_plugin_v1>() == FOXW_PLUGIN_V1_SIZE_1_0);
const _: () = assert!(std::mem::size_of::<foxw_str>() == 2 * std::mem::size_of::<usize>());
const _: () = assert!(std::mem::size_of::<foxw_header>() == 2 * std::mem::size_of::<foxw_str>());

// What the C compiler gives on LP64 (x86_64, aarch64): checked against
// sizeof() in the daemon's test of the Rust example.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(FOXW_OUTCOME_SIZE_1_0 == 40);
    assert!(FOXW_PUBLISH_SIZE_1_0 == 120);
    assert!(FOXW_HOST_API_SIZE_1_0 == 8 + 8 + 28 * 8);
    assert!(FOXW_HOST_API_SIZE_1_1 == 256);
    assert!(FOXW_PUBLISH_SIZE_1_1 == 168);
    assert!(FOXW_CONFIG_KEY_SIZE_1_0 == 40);
    assert!(FOXW_PLUGIN_INFO_SIZE_1_0 == 72);
    assert!(FOXW_HANDLER_DEF_SIZE_1_0 == 40);
    assert!(FOXW_PLUGIN_V1_SIZE_1_0 == 64);
};
