//! What `foxworker_plugin!` expands to calls: the boundary between the
//! daemon's C calls and the plugin's Rust. Not a public API.
//!
//! Every function here that the daemon calls runs the plugin's code under
//! `catch_unwind`: a panic unwinding into the daemon's C++ frames would be
//! undefined behaviour (or an abort), so it becomes an error or a retry.
use std::any::Any;
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

use crate::config::Config;
use crate::context::{duration_ms, Context, Level};
use crate::ffi;
use crate::message::{bytes, Message};
use crate::{Plugin, Verdict};

// One copy of this crate is linked into each plugin, so these are the
// plugin's own: the host table and ctx that init received.
static HOST: AtomicPtr<ffi::foxw_host_api> = AtomicPtr::new(std::ptr::null_mut());
static CTX: AtomicPtr<ffi::foxw_plugin_ctx> = AtomicPtr::new(std::ptr::null_mut());

fn host() -> Option<&'static ffi::foxw_host_api> {
    // Host-owned and static: valid for the life of the process.
    unsafe { HOST.load(Ordering::Acquire).as_ref() }
}

fn context() -> Option<Context> {
    let ctx = CTX.load(Ordering::Acquire);
    match host() {
        Some(host) if !ctx.is_null() => Some(unsafe { Context::from_raw(host, ctx) }),
        _ => None,
    }
}

/// The text of a panic payload: `panic!` gives a `&str` or a `String`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic payload that is not a string".to_string()
    }
}

/// Copies `text` into a caller's NUL-terminated error buffer, truncated to
/// fit at a character boundary.
///
/// # Safety
/// `err` must be NULL or point to `cap` writable bytes.
pub unsafe fn set_error(err: *mut c_char, cap: usize, text: &str) {
    if err.is_null() || cap == 0 {
        return;
    }
    let n = truncated_len(text, cap - 1);
    std::ptr::copy_nonoverlapping(text.as_ptr() as *const c_char, err, n);
    *err.add(n) = 0;
}

fn truncated_len(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut n = max;
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Writes a verdict's reason and retry hint into the host's outcome.
///
/// # Safety
/// `out` must be NULL or the host's outcome for this call.
pub unsafe fn write_outcome(out: *mut ffi::foxw_outcome, verdict: &Verdict) -> ffi::foxw_verdict {
    let (code, reason, delay) = match verdict {
        Verdict::Ack => (ffi::FOXW_ACK, "", None),
        Verdict::Retry { reason, delay } => (ffi::FOXW_RETRY, reason.as_str(), *delay),
        Verdict::Reject { reason } => (ffi::FOXW_REJECT, reason.as_str(), None),
    };
    let out = match out.as_mut() {
        Some(out) => out,
        None => return code,
    };
    if !out.reason.is_null() && out.reason_cap > 0 {
        let n = truncated_len(reason, out.reason_cap - 1);
        std::ptr::copy_nonoverlapping(reason.as_ptr() as *const c_char, out.reason, n);
        *out.reason.add(n) = 0;
        out.reason_len = n;
    }
    if out.struct_size >= ffi::FOXW_OUTCOME_SIZE_1_0 {
        out.retry_delay_ms = delay.map_or(0, duration_ms);
    }
    code
}

/// The same checks as the C SDK's foxw_host_usable().
fn host_usable(host: *const ffi::foxw_host_api) -> Result<&'static ffi::foxw_host_api, &'static str> {
    const HEAD: usize = std::mem::size_of::<usize>() + 4; // struct_size, abi_major, abi_minor
    let host = match unsafe { host.as_ref() } {
        Some(host) => host,
        None => return Err("the host does not speak plugin ABI 1"),
    };
    if host.struct_size < HEAD || host.abi_major != ffi::FOXW_ABI_MAJOR {
        return Err("the host does not speak plugin ABI 1");
    }
    // A 1.N host's table covers every service up to 1.N. (Always false while
    // the crate targets 1.0, as in the C header.)
    #[allow(clippy::absurd_extreme_comparisons)]
    if host.abi_minor < ffi::FOXW_TARGET_ABI_MINOR {
        return Err("the host's plugin ABI minor is too old");
    }
    if host.struct_size < ffi::FOXW_HOST_API_SIZE_1_0 {
        return Err("the host's services table is smaller than ABI 1.0");
    }
    Ok(host)
}

/// Panics are reported through the daemon's log (tagged with the plugin's
/// name, with the file and line) instead of the process's stderr. The hook
/// is this plugin's own: each plugin links its own copy of std.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match context() {
            // One line: newer Rust puts the message on a line of its own.
            Some(ctx) => ctx.log(Level::Error, &info.to_string().replace(":\n", ": ").replace('\n', " ")),
            None => previous(info),
        }));
    });
}

/// `foxworker_plugin_init_v1`.
///
/// # Safety
/// The arguments are the daemon's, as plugin.h describes them.
pub unsafe fn init<P: Plugin>(
    host: *const ffi::foxw_host_api,
    ctx: *mut ffi::foxw_plugin_ctx,
    err: *mut c_char,
    err_cap: usize,
    plugin: &'static ffi::foxw_plugin_v1,
) -> *const ffi::foxw_plugin_v1 {
    let host = match host_usable(host) {
        Ok(host) => host,
        Err(why) => {
            set_error(err, err_cap, why);
            return std::ptr::null();
        }
    };
    HOST.store(host as *const _ as *mut _, Ordering::Release);
    CTX.store(ctx, Ordering::Release);
    install_panic_hook();
    let context = Context::from_raw(host, ctx);
    match catch_unwind(AssertUnwindSafe(|| P::init(&context))) {
        Ok(Ok(())) => plugin,
        Ok(Err(why)) => {
            set_error(err, err_cap, &why);
            std::ptr::null()
        }
        Err(payload) => {
            set_error(err, err_cap, &format!("panic: {}", panic_message(&*payload)));
            std::ptr::null()
        }
    }
}

/// The plugin's `create`: `P::create`, boxed.
///
/// # Safety
/// The arguments are the daemon's, as plugin.h describes them.
pub unsafe extern "C" fn create<P: Plugin>(
    ctx: *mut ffi::foxw_plugin_ctx,
    config_json: *const c_char,
    config_len: usize,
    instance: *mut *mut c_void,
    err: *mut c_char,
    err_cap: usize,
) -> i32 {
    let host = match host() {
        Some(host) => host,
        None => {
            set_error(err, err_cap, "create called before init");
            return 1;
        }
    };
    let context = Context::from_raw(host, ctx);
    let json = bytes(ffi::foxw_str {
        ptr: config_json,
        len: config_len,
    });
    let result = catch_unwind(AssertUnwindSafe(|| {
        let json = std::str::from_utf8(json).map_err(|e| format!("the config is not UTF-8: {}", e))?;
        P::create(&context, &Config::new(context, json))
    }));
    let why = match result {
        Ok(Ok(created)) => {
            *instance = Box::into_raw(Box::new(created)) as *mut c_void;
            return 0;
        }
        Ok(Err(why)) => why,
        Err(payload) => format!("panic: {}", panic_message(&*payload)),
    };
    set_error(err, err_cap, &why);
    1
}

/// The plugin's `destroy`: drops the instance.
///
/// # Safety
/// `instance` must come from `create::<P>`, once.
pub unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let instance = Box::from_raw(instance as *mut P);
    if let (Err(payload), Some(ctx)) = (catch_unwind(AssertUnwindSafe(|| drop(instance))), context()) {
        ctx.error(&format!(
            "an instance panicked while dropped: {}",
            panic_message(&*payload)
        ));
    }
}

/// The plugin's `shutdown`.
///
/// # Safety
/// `ctx` must be the daemon's, as init received it.
pub unsafe extern "C" fn shutdown<P: Plugin>(ctx: *mut ffi::foxw_plugin_ctx) {
    if let Some(host) = host() {
        let context = Context::from_raw(host, ctx);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| P::shutdown(&context))) {
            context.error(&format!("shutdown panicked: {}", panic_message(&*payload)));
        }
    }
    // No host service may be called with ctx from now on.
    CTX.store(std::ptr::null_mut(), Ordering::Release);
}

/// Runs one handler on one message: the body of every handler trampoline.
///
/// # Safety
/// `msg` and `out` must be the daemon's, for this call.
pub unsafe fn handle<F>(msg: *const ffi::foxw_message, out: *mut ffi::foxw_outcome, handler: F) -> ffi::foxw_verdict
where
    F: FnOnce(&Message) -> Verdict,
{
    let verdict = match host() {
        None => Verdict::retry("the plugin was not initialised"),
        Some(host) => {
            let message = Message::from_raw(host, msg);
            match catch_unwind(AssertUnwindSafe(|| handler(&message))) {
                Ok(verdict) => verdict,
                Err(payload) => Verdict::retry(format!("panic: {}", panic_message(&*payload))),
            }
        }
    };
    write_outcome(out, &verdict)
}

/// The instance of a SHARED plugin, which several threads use at once.
///
/// # Safety
/// `instance` must come from `create::<P>` and not be destroyed yet.
pub unsafe fn shared<'a, P: Plugin + Sync>(instance: *mut c_void) -> &'a P {
    &*(instance as *const P)
}

/// The instance of a PER_SLOT or PER_THREAD plugin, never used by two
/// threads at once.
///
/// # Safety
/// `instance` must come from `create::<P>` and not be destroyed yet, and the
/// daemon must run one message at a time on it.
pub unsafe fn exclusive<'a, P: Plugin>(instance: *mut c_void) -> &'a mut P {
    &mut *(instance as *mut P)
}

/// `[a-z0-9_]+`, checked at compile time by the macro.
pub const fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return false;
        }
        i += 1;
    }
    true
}
