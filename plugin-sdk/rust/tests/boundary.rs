//! The macro's exported functions driven through a fake host table, as the
//! daemon drives them: magic block, init, create with typed config reads,
//! handlers (verdicts, reasons, panics), publish, destroy, shutdown.
use foxworker_plugin::ffi::*;
use foxworker_plugin::{foxworker_plugin, Config, Context, Message, Plugin, Property, Publish, Verdict};
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::sync::Mutex;
use std::time::Duration;

// ---- a fake host ------------------------------------------------------------

struct FakeMessage {
    id: &'static str,
    payload: &'static [u8],
    message_type: &'static str,
    attempt: u32,
    headers: Vec<(&'static str, &'static str)>,
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PUBLISHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn s(text: &'static str) -> foxw_str {
    foxw_str {
        ptr: text.as_ptr() as *const c_char,
        len: text.len(),
    }
}
unsafe fn fake<'a>(msg: *const foxw_message) -> &'a FakeMessage {
    &*(msg as *const FakeMessage)
}
unsafe fn text(p: *const c_char, len: usize) -> String {
    String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
}

unsafe extern "C" fn log_enabled(_: *const foxw_plugin_ctx, level: i32) -> bool {
    level >= FOXW_LOG_INFO
}
unsafe extern "C" fn log(_: *const foxw_plugin_ctx, level: i32, t: *const c_char, len: usize) {
    LOG.lock().unwrap().push(format!("{}:{}", level, text(t, len)));
}
unsafe extern "C" fn metric_define(
    _: *mut foxw_plugin_ctx,
    kind: i32,
    name: *const c_char,
    _: *const c_char,
    err: *mut c_char,
    cap: usize,
) -> *mut foxw_metric {
    if CStr::from_ptr(name).to_bytes().contains(&b' ') {
        foxworker_plugin::__private::set_error(err, cap, "invalid metric name");
        return std::ptr::null_mut();
    }
    kind as usize as *mut foxw_metric
}
unsafe extern "C" fn metric_update(_: *mut foxw_metric, _: f64) {}
unsafe extern "C" fn monotonic_ns() -> u64 {
    1_000
}
unsafe extern "C" fn wall_time_ms() -> i64 {
    7
}
unsafe extern "C" fn msg_id(m: *const foxw_message) -> foxw_str {
    s(fake(m).id)
}
unsafe extern "C" fn msg_queue(_: *const foxw_message) -> foxw_str {
    s("jobs")
}
unsafe extern "C" fn msg_payload(m: *const foxw_message) -> foxw_str {
    foxw_str {
        ptr: fake(m).payload.as_ptr() as *const c_char,
        len: fake(m).payload.len(),
    }
}
unsafe extern "C" fn msg_property(m: *const foxw_message, p: i32) -> foxw_str {
    if p == FOXW_PROP_MESSAGE_TYPE {
        s(fake(m).message_type)
    } else {
        foxw_str::EMPTY
    }
}
unsafe extern "C" fn msg_priority(_: *const foxw_message) -> u8 {
    4
}
unsafe extern "C" fn msg_zero_ms(_: *const foxw_message) -> i64 {
    0
}
unsafe extern "C" fn msg_attempt(m: *const foxw_message) -> u32 {
    fake(m).attempt
}
unsafe extern "C" fn msg_header(m: *const foxw_message, n: *const c_char, len: usize, v: *mut foxw_str) -> bool {
    let name = text(n, len);
    match fake(m).headers.iter().find(|(k, _)| *k == name) {
        Some((_, value)) => {
            *v = s(value);
            true
        }
        None => false,
    }
}
unsafe extern "C" fn msg_header_count(m: *const foxw_message) -> usize {
    fake(m).headers.len()
}
unsafe extern "C" fn msg_header_at(m: *const foxw_message, i: usize, n: *mut foxw_str, v: *mut foxw_str) -> bool {
    match fake(m).headers.get(i) {
        Some((name, value)) => {
            *n = s(name);
            *v = s(value);
            true
        }
        None => false,
    }
}
unsafe extern "C" fn msg_deadline_ns(_: *const foxw_message) -> u64 {
    1_500
}
unsafe extern "C" fn msg_cancelled(_: *const foxw_message) -> bool {
    false
}
unsafe extern "C" fn complete(_: *const foxw_message, _: i32, _: *const c_char, _: usize, _: u64) -> i32 {
    -1
}
unsafe extern "C" fn publish(
    _: *mut foxw_plugin_ctx,
    parent: *const foxw_message,
    p: *const foxw_publish,
    err: *mut c_char,
    cap: usize,
) -> i32 {
    let p = &*p;
    let queue = text(p.queue.ptr, p.queue.len);
    if queue != "out" {
        foxworker_plugin::__private::set_error(err, cap, "no queue named \"nowhere\"");
        return -1;
    }
    let h = &*p.headers;
    PUBLISHED.lock().unwrap().push(format!(
        "{}|{}|{}|{}={}|{}|{}|{}",
        queue,
        text(p.payload.ptr, p.payload.len),
        text(p.message_type.ptr, p.message_type.len),
        text(h.name.ptr, h.name.len),
        text(h.value.ptr, h.value.len),
        p.delay_ms,
        p.struct_size,
        fake(parent).id
    ));
    0
}
fn key(k: *const c_char) -> String {
    unsafe { CStr::from_ptr(k) }.to_string_lossy().into_owned()
}
unsafe extern "C" fn config_string(_: *const foxw_plugin_ctx, k: *const c_char, v: *mut foxw_str) -> i32 {
    match key(k).as_str() {
        "greeting" => {
            *v = s("howdy");
            FOXW_CONFIG_OK
        }
        _ => FOXW_CONFIG_ABSENT,
    }
}
unsafe extern "C" fn config_int(_: *const foxw_plugin_ctx, k: *const c_char, v: *mut i64) -> i32 {
    match key(k).as_str() {
        "limit" => {
            *v = 42;
            FOXW_CONFIG_OK
        }
        "greeting" => FOXW_CONFIG_WRONG_TYPE,
        _ => FOXW_CONFIG_ABSENT,
    }
}
unsafe extern "C" fn config_double(_: *const foxw_plugin_ctx, _: *const c_char, v: *mut f64) -> i32 {
    *v = 0.25;
    FOXW_CONFIG_OK
}
unsafe extern "C" fn config_bool(_: *const foxw_plugin_ctx, _: *const c_char, v: *mut bool) -> i32 {
    *v = true;
    FOXW_CONFIG_OK
}
unsafe extern "C" fn config_duration_ms(_: *const foxw_plugin_ctx, _: *const c_char, v: *mut u64) -> i32 {
    *v = 1500;
    FOXW_CONFIG_OK
}
unsafe extern "C" fn config_count(_: *const foxw_plugin_ctx, k: *const c_char, v: *mut usize) -> i32 {
    match key(k).as_str() {
        "tags" | "labels" => {
            *v = 2;
            FOXW_CONFIG_OK
        }
        _ => FOXW_CONFIG_ABSENT,
    }
}
unsafe extern "C" fn config_item(
    _: *const foxw_plugin_ctx,
    k: *const c_char,
    i: usize,
    n: *mut foxw_str,
    v: *mut foxw_str,
) -> i32 {
    let map = key(k) == "labels";
    let (name, value) = match (map, i) {
        (false, 0) => ("", "a"),
        (false, 1) => ("", "b"),
        (true, 0) => ("team", "core"),
        (true, 1) => ("tier", "1"),
        _ => return FOXW_CONFIG_ABSENT,
    };
    if !n.is_null() {
        *n = s(name);
    }
    *v = s(value);
    FOXW_CONFIG_OK
}

// A 1.0 daemon's table: the 1.1 services lie past its struct_size, so the
// crate must not read them (they are None here, so a read would show).
static HOST: foxw_host_api = foxw_host_api {
    struct_size: FOXW_HOST_API_SIZE_1_0,
    abi_major: 1,
    abi_minor: 0,
    log_enabled: Some(log_enabled),
    log: Some(log),
    metric_define: Some(metric_define),
    metric_update: Some(metric_update),
    monotonic_ns: Some(monotonic_ns),
    wall_time_ms: Some(wall_time_ms),
    msg_id: Some(msg_id),
    msg_queue: Some(msg_queue),
    msg_payload: Some(msg_payload),
    msg_property: Some(msg_property),
    msg_priority: Some(msg_priority),
    msg_timestamp_ms: Some(msg_zero_ms),
    msg_enqueued_at_ms: Some(msg_zero_ms),
    msg_attempt: Some(msg_attempt),
    msg_header: Some(msg_header),
    msg_header_count: Some(msg_header_count),
    msg_header_at: Some(msg_header_at),
    msg_deadline_ns: Some(msg_deadline_ns),
    msg_cancelled: Some(msg_cancelled),
    complete: Some(complete),
    publish: Some(publish),
    config_string: Some(config_string),
    config_int: Some(config_int),
    config_double: Some(config_double),
    config_bool: Some(config_bool),
    config_duration_ms: Some(config_duration_ms),
    config_count: Some(config_count),
    config_item: Some(config_item),
    msg_property_int: None,
    msg_header_type: None,
};

// ---- the plugin under test --------------------------------------------------

struct Probe {
    ctx: Context,
    summary: String,
    handled: u32,
}

impl Plugin for Probe {
    fn create(ctx: &Context, config: &Config) -> Result<Self, String> {
        if config.json().contains("refuse") {
            return Err("refused as asked".to_string());
        }
        if config.json().contains("panic") {
            panic!("create blew up");
        }
        if config.json().contains("wrong") {
            config.int("greeting")?;
        }
        if config.json().contains("bad metric") {
            ctx.counter("bad metric", "")?;
        }
        let summary = format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            config.string("greeting")?,
            config.string("missing")?,
            config.int("limit")?,
            config.double("ratio")?,
            config.bool("on")?,
            config.duration("timeout")?,
            config.list("tags")?,
            config.map("labels")?,
        );
        Ok(Probe {
            ctx: *ctx,
            summary,
            handled: 0,
        })
    }
}

impl Probe {
    fn ack(&mut self, _: &Message) -> Verdict {
        self.handled += 1;
        Verdict::Ack
    }
    fn retry(&mut self, msg: &Message) -> Verdict {
        Verdict::retry_after(format!("later {}", msg.attempt()), Duration::from_millis(1500))
    }
    fn reject(&mut self, _: &Message) -> Verdict {
        Verdict::reject("bad input")
    }
    fn boom(&mut self, msg: &Message) -> Verdict {
        if msg.payload() == b"string" {
            panic!("formatted {}", 7);
        }
        panic!("static boom");
    }
    fn describe(&mut self, msg: &Message) -> Verdict {
        Verdict::reject(format!(
            "{}|{}|{}|{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}|{}",
            msg.id(),
            msg.queue(),
            msg.message_type(),
            msg.payload_str().unwrap(),
            msg.header("x"),
            msg.header("nope"),
            msg.headers(),
            msg.priority(),
            msg.timestamp_ms(),
            msg.time_left(),
            msg.cancelled(),
            self.summary
        ))
    }
    fn send(&mut self, msg: &Message) -> Verdict {
        let queue = msg.payload_str().unwrap();
        let p = Publish::new(queue, b"hi")
            .message_type("t")
            .header("k", "v")
            .delay(Duration::from_secs(2));
        match self.ctx.publish(&p, Some(msg)) {
            Ok(()) => Verdict::Ack,
            Err(why) => Verdict::reject(why),
        }
    }
    fn long_reason(&mut self, _: &Message) -> Verdict {
        Verdict::reject("é".repeat(100))
    }
}

foxworker_plugin! {
    name: "probe",
    version: "0.0.1",
    description: "Rust SDK probe",
    instance: Probe,
    model: PerSlot,
    config: [
        "greeting": String = "hello" => "How to greet",
        "limit": Int required => "A limit",
        "tags": StringList => "Tags",
    ],
    handlers: [
        "ack" => Probe::ack,
        "retry" => Probe::retry,
        "reject" => Probe::reject,
        "boom" => Probe::boom,
        "describe" => Probe::describe,
        "send" => Probe::send,
        "long_reason" => Probe::long_reason,
    ],
}

// ---- driving it ---------------------------------------------------------------

struct Loaded {
    def: &'static foxw_plugin_v1,
}

fn ctx_ptr() -> *mut foxw_plugin_ctx {
    0x1000 as *mut foxw_plugin_ctx
}

fn load() -> Loaded {
    let mut err = [0 as c_char; 256];
    let def = unsafe { foxworker_plugin_init_v1(&HOST, ctx_ptr(), err.as_mut_ptr(), err.len()) };
    assert!(!def.is_null());
    Loaded { def: unsafe { &*def } }
}

impl Loaded {
    fn create(&self, json: &str) -> Result<*mut c_void, String> {
        let mut instance = std::ptr::null_mut();
        let mut err = [0 as c_char; 256];
        let rc = unsafe {
            (self.def.create.unwrap())(
                ctx_ptr(),
                json.as_ptr() as *const c_char,
                json.len(),
                &mut instance,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc == 0 {
            Ok(instance)
        } else {
            Err(unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned())
        }
    }

    fn handle(&self, instance: *mut c_void, handler: &str, msg: &FakeMessage, cap: usize) -> (i32, String, u64) {
        let handlers = unsafe { std::slice::from_raw_parts(self.def.handlers, self.def.handler_count) };
        let h = handlers
            .iter()
            .find(|h| unsafe { CStr::from_ptr(h.name) }.to_str().unwrap() == handler)
            .expect("handler");
        let mut reason = vec![b'?' as c_char; cap];
        let mut out = foxw_outcome {
            struct_size: std::mem::size_of::<foxw_outcome>(),
            reason: reason.as_mut_ptr(),
            reason_cap: cap,
            reason_len: 0,
            retry_delay_ms: 99,
        };
        let verdict =
            unsafe { (h.handle.unwrap())(instance, msg as *const FakeMessage as *const foxw_message, &mut out) };
        assert_eq!(reason[out.reason_len], 0, "the reason is NUL-terminated");
        (
            verdict,
            unsafe { text(reason.as_ptr(), out.reason_len) },
            out.retry_delay_ms,
        )
    }
}

fn message(payload: &'static [u8]) -> FakeMessage {
    FakeMessage {
        id: "m-1",
        payload,
        message_type: "job",
        attempt: 2,
        headers: vec![("x", "1"), ("y", "2")],
    }
}

#[test]
fn magic_block_and_tables() {
    let info = unsafe { &*foxworker_plugin_magic() };
    assert_eq!(info.struct_size, FOXW_PLUGIN_INFO_SIZE_1_0);
    assert_eq!(info.magic, FOXW_PLUGIN_MAGIC_VALUE);
    assert_eq!((info.abi_major, info.abi_minor, info.sdk_minor), (1, 0, 1));
    assert_eq!(unsafe { CStr::from_ptr(info.name) }.to_str().unwrap(), "probe");
    assert_eq!(unsafe { CStr::from_ptr(info.version) }.to_str().unwrap(), "0.0.1");
    assert_eq!(info.config_key_count, 3);
    assert_eq!(info.config_key_size, FOXW_CONFIG_KEY_SIZE_1_0);
    let schema = unsafe { std::slice::from_raw_parts(info.config_schema, 3) };
    assert_eq!(
        unsafe { CStr::from_ptr(schema[0].default_value) }.to_str().unwrap(),
        "hello"
    );
    assert_eq!((schema[1].type_, schema[1].required), (FOXW_CONFIG_INT, true));
    assert!(schema[1].default_value.is_null());
    assert_eq!((schema[2].type_, schema[2].required), (FOXW_CONFIG_STRING_LIST, false));

    let loaded = load();
    assert_eq!(loaded.def.struct_size, FOXW_PLUGIN_V1_SIZE_1_0);
    assert_eq!(loaded.def.instance_model, FOXW_INSTANCE_PER_SLOT);
    assert_eq!(loaded.def.handler_count, 7);
    assert_eq!(loaded.def.handler_size, FOXW_HANDLER_DEF_SIZE_1_0);
    let handlers = unsafe { std::slice::from_raw_parts(loaded.def.handlers, 7) };
    for h in handlers {
        assert_eq!(h.struct_size, FOXW_HANDLER_DEF_SIZE_1_0);
        assert!(h.handle.is_some() && h.handle_batch.is_none());
        assert_eq!((h.flags, h.reserved), (0, 0));
    }
}

#[test]
fn init_refuses_hosts_it_cannot_use() {
    let mut err = [0 as c_char; 256];
    let refused = |host: *const foxw_host_api, err: &mut [c_char; 256]| {
        let def = unsafe { foxworker_plugin_init_v1(host, ctx_ptr(), err.as_mut_ptr(), err.len()) };
        assert!(def.is_null());
        unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned()
    };
    assert_eq!(
        refused(std::ptr::null(), &mut err),
        "the host does not speak plugin ABI 1"
    );
    let mut other = unsafe { std::ptr::read(&HOST) };
    other.abi_major = 2;
    assert_eq!(refused(&other, &mut err), "the host does not speak plugin ABI 1");
    other.abi_major = 1;
    other.struct_size = FOXW_HOST_API_SIZE_1_0 - 8;
    assert_eq!(
        refused(&other, &mut err),
        "the host's services table is smaller than ABI 1.0"
    );
}

#[test]
fn verdicts_reasons_and_delays() {
    let loaded = load();
    let instance = loaded.create("{}").unwrap();
    let msg = message(b"x");
    assert_eq!(loaded.handle(instance, "ack", &msg, 64), (FOXW_ACK, String::new(), 0));
    assert_eq!(
        loaded.handle(instance, "retry", &msg, 64),
        (FOXW_RETRY, "later 2".to_string(), 1500)
    );
    assert_eq!(
        loaded.handle(instance, "reject", &msg, 64),
        (FOXW_REJECT, "bad input".to_string(), 0)
    );
    // Truncated to the host's buffer at a character boundary: 9 bytes fit, "é" is 2.
    let (_, reason, _) = loaded.handle(instance, "long_reason", &msg, 10);
    assert_eq!(reason, "éééé");
    assert_eq!(unsafe { &*(instance as *const Probe) }.handled, 1);
    unsafe { (loaded.def.destroy.unwrap())(instance) };
}

#[test]
fn panics_become_retries_with_the_message() {
    let loaded = load();
    let instance = loaded.create("{}").unwrap();
    let (verdict, reason, delay) = loaded.handle(instance, "boom", &message(b"static"), 64);
    assert_eq!((verdict, reason.as_str(), delay), (FOXW_RETRY, "panic: static boom", 0));
    let (verdict, reason, _) = loaded.handle(instance, "boom", &message(b"string"), 64);
    assert_eq!((verdict, reason.as_str()), (FOXW_RETRY, "panic: formatted 7"));
    // The panic hook reports through the host's log, with the location.
    assert!(LOG
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("4:") && l.contains("static boom") && l.contains("boundary.rs")));
    // The instance is still usable.
    assert_eq!(loaded.handle(instance, "ack", &message(b"x"), 64).0, FOXW_ACK);
    unsafe { (loaded.def.destroy.unwrap())(instance) };
}

#[test]
fn create_reads_typed_config_and_reports_refusals() {
    let loaded = load();
    let instance = loaded.create("{}").unwrap();
    let (_, reason, _) = loaded.handle(instance, "describe", &message(b"body"), 1024);
    assert_eq!(
        reason,
        "m-1|jobs|job|body|Some(\"1\")|None|[(\"x\", \"1\"), (\"y\", \"2\")]|4|None|Some(500ns)|false|\
         Some(\"howdy\") None Some(42) Some(0.25) Some(true) Some(1.5s) Some([\"a\", \"b\"]) \
         Some([(\"team\", \"core\"), (\"tier\", \"1\")])"
    );
    unsafe { (loaded.def.destroy.unwrap())(instance) };
    assert_eq!(loaded.create("{\"refuse\": 1}").unwrap_err(), "refused as asked");
    assert_eq!(loaded.create("{\"panic\": 1}").unwrap_err(), "panic: create blew up");
    assert_eq!(
        loaded.create("{\"wrong\": 1}").unwrap_err(),
        "config key \"greeting\": not an integer"
    );
    assert_eq!(loaded.create("{\"bad metric\": 1}").unwrap_err(), "invalid metric name");
}

#[test]
fn publish_passes_the_message_and_reports_errors() {
    let loaded = load();
    let instance = loaded.create("{}").unwrap();
    assert_eq!(loaded.handle(instance, "send", &message(b"out"), 64).0, FOXW_ACK);
    assert_eq!(
        PUBLISHED.lock().unwrap().last().unwrap(),
        &format!("out|hi|t|k=v|2000|{}|m-1", FOXW_PUBLISH_SIZE_1_1)
    );
    let (verdict, reason, _) = loaded.handle(instance, "send", &message(b"nowhere"), 64);
    assert_eq!((verdict, reason.as_str()), (FOXW_REJECT, "no queue named \"nowhere\""));
    unsafe { (loaded.def.destroy.unwrap())(instance) };
}

#[test]
fn properties_read_empty_when_unset() {
    let loaded = load();
    let _ = loaded;
    let msg = message(b"x");
    let m = unsafe { Message::from_raw(&HOST, &msg as *const FakeMessage as *const foxw_message) };
    assert_eq!(m.property(Property::ReplyTo), "");
    assert_eq!(m.attempt(), 2);
    assert_eq!(m.deadline_ns(), Some(1_500));
}

// On a 1.0 daemon (HOST's struct_size ends at config_item) the 1.1 reads
// answer "not set" and "a string" without touching what lies past the table.
#[test]
fn services_of_1_1_degrade_on_a_1_0_host() {
    let msg = message(b"x");
    let m = unsafe { Message::from_raw(&HOST, &msg as *const FakeMessage as *const foxw_message) };
    assert_eq!(m.property_int(foxworker_plugin::NumericProperty::Priority), None);
    assert_eq!(m.header_type(0), Some(foxworker_plugin::HeaderType::String));
    assert_eq!(m.header_type(2), None); // two headers
    assert_eq!(m.property(Property::ClusterId), "");
}

#[test]
fn frozen_sizes_are_the_ends_of_the_last_1_0_fields() {
    // offset_of! is newer than Rust 1.63: measure on a value.
    macro_rules! end_of {
        ($t:ty, $field:ident) => {{
            let v = std::mem::MaybeUninit::<$t>::uninit();
            let base = v.as_ptr() as usize;
            let field = unsafe { std::ptr::addr_of!((*v.as_ptr()).$field) };
            field as usize - base + std::mem::size_of_val(unsafe { &*field })
        }};
    }
    assert_eq!(end_of!(foxw_outcome, retry_delay_ms), FOXW_OUTCOME_SIZE_1_0);
    assert_eq!(end_of!(foxw_publish, delay_ms), FOXW_PUBLISH_SIZE_1_0);
    assert_eq!(end_of!(foxw_host_api, config_item), FOXW_HOST_API_SIZE_1_0);
    assert_eq!(end_of!(foxw_config_key, description), FOXW_CONFIG_KEY_SIZE_1_0);
    assert_eq!(end_of!(foxw_plugin_info, config_key_size), FOXW_PLUGIN_INFO_SIZE_1_0);
    assert_eq!(end_of!(foxw_handler_def, reserved), FOXW_HANDLER_DEF_SIZE_1_0);
    assert_eq!(end_of!(foxw_plugin_v1, shutdown), FOXW_PLUGIN_V1_SIZE_1_0);
}
