//! The plugin's handle on the daemon: logging, metrics, clocks, publishing
//! and config reads.
use std::ffi::CString;
use std::os::raw::c_char;
use std::time::Duration;

use crate::config::Config;
use crate::ffi;
use crate::message::{c_buffer_text, Message};

/// Log levels (the header's FOXW_LOG_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Trace = ffi::FOXW_LOG_TRACE,
    Debug = ffi::FOXW_LOG_DEBUG,
    Info = ffi::FOXW_LOG_INFO,
    Warn = ffi::FOXW_LOG_WARN,
    Error = ffi::FOXW_LOG_ERROR,
}

/// The daemon's services for one loaded plugin. Cheap to copy; usable from
/// any thread from the plugin's `init` until its `shutdown` returns (keep it
/// in your instances, not in a global that outlives the plugin).
#[derive(Clone, Copy)]
pub struct Context {
    host: &'static ffi::foxw_host_api,
    ctx: *mut ffi::foxw_plugin_ctx,
}

// The header: host services may be called from any thread, and ctx is valid
// from init until shutdown returns.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    /// # Safety
    /// `ctx` must be the ctx the daemon passed to init, and used only until
    /// the plugin's shutdown returns.
    pub unsafe fn from_raw(host: &'static ffi::foxw_host_api, ctx: *mut ffi::foxw_plugin_ctx) -> Context {
        Context { host, ctx }
    }

    /// The host's services table, for services this crate does not wrap.
    pub fn raw_host(&self) -> &'static ffi::foxw_host_api {
        self.host
    }

    /// The plugin's ctx, to pass to raw host services.
    pub fn raw_ctx(&self) -> *mut ffi::foxw_plugin_ctx {
        self.ctx
    }

    /// True when a line at `level` would be logged: check it before building
    /// expensive text.
    pub fn log_enabled(&self, level: Level) -> bool {
        match self.host.log_enabled {
            Some(f) => unsafe { f(self.ctx, level as i32) },
            None => false,
        }
    }

    /// Logs `text` into the daemon's log, tagged with the plugin's name.
    pub fn log(&self, level: Level, text: &str) {
        if let Some(f) = self.host.log {
            unsafe { f(self.ctx, level as i32, text.as_ptr() as *const c_char, text.len()) }
        }
    }

    pub fn trace(&self, text: &str) {
        self.log(Level::Trace, text)
    }
    pub fn debug(&self, text: &str) {
        self.log(Level::Debug, text)
    }
    pub fn info(&self, text: &str) {
        self.log(Level::Info, text)
    }
    pub fn warn(&self, text: &str) {
        self.log(Level::Warn, text)
    }
    pub fn error(&self, text: &str) {
        self.log(Level::Error, text)
    }

    /// Defines (or finds, when defined before with the same kind) a counter
    /// named foxworker_plugin_<plugin>_<name>. Only during `init` or
    /// `create`.
    pub fn counter(&self, name: &str, help: &str) -> Result<Metric, String> {
        self.metric(ffi::FOXW_METRIC_COUNTER, name, help)
    }

    /// A gauge; see [`Context::counter`].
    pub fn gauge(&self, name: &str, help: &str) -> Result<Metric, String> {
        self.metric(ffi::FOXW_METRIC_GAUGE, name, help)
    }

    /// A histogram (observe seconds for durations); see [`Context::counter`].
    pub fn histogram(&self, name: &str, help: &str) -> Result<Metric, String> {
        self.metric(ffi::FOXW_METRIC_HISTOGRAM, name, help)
    }

    fn metric(&self, kind: i32, name: &str, help: &str) -> Result<Metric, String> {
        let define = self.host.metric_define.ok_or("the host has no metric_define")?;
        let c_name = CString::new(name).map_err(|_| format!("metric name {:?} contains a NUL", name))?;
        let c_help = CString::new(help).map_err(|_| format!("metric help of {:?} contains a NUL", name))?;
        let mut err = [0 as c_char; 512];
        let raw = unsafe {
            define(
                self.ctx,
                kind,
                c_name.as_ptr(),
                c_help.as_ptr(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if raw.is_null() {
            let why = c_buffer_text(&err);
            return Err(if why.is_empty() {
                format!("metric {:?} was refused", name)
            } else {
                why
            });
        }
        Ok(Metric { host: self.host, raw })
    }

    /// The daemon's monotonic clock (the one message deadlines use).
    pub fn monotonic_ns(&self) -> u64 {
        self.host.monotonic_ns.map_or(0, |f| unsafe { f() })
    }

    /// Wall-clock time, milliseconds since the Unix epoch.
    pub fn wall_time_ms(&self) -> i64 {
        self.host.wall_time_ms.map_or(0, |f| unsafe { f() })
    }

    /// Typed reads of the plugin's config (the same as `create` receives).
    pub fn config(&self) -> Config<'static> {
        Config::new(*self, "")
    }

    /// Publishes a message to a queue of the daemon's config; with a parent,
    /// it inherits the parent's correlation id. Returns once the message is
    /// durably enqueued, or the daemon's reason. Not available during `init`
    /// or `create`.
    pub fn publish(&self, publish: &Publish, parent: Option<&Message>) -> Result<(), String> {
        let f = self.host.publish.ok_or("the host has no publish")?;
        let headers: Vec<ffi::foxw_header> = publish
            .headers
            .iter()
            .map(|(name, value)| ffi::foxw_header {
                name: raw_str(name.as_bytes()),
                value: raw_str(value.as_bytes()),
            })
            .collect();
        let opt = |s: Option<&str>| s.map_or(ffi::foxw_str::EMPTY, |s| raw_str(s.as_bytes()));
        let raw = ffi::foxw_publish {
            struct_size: std::mem::size_of::<ffi::foxw_publish>(),
            queue: raw_str(publish.queue.as_bytes()),
            payload: raw_str(publish.payload),
            message_type: opt(publish.message_type),
            content_type: opt(publish.content_type),
            correlation_id: opt(publish.correlation_id),
            headers: if headers.is_empty() {
                std::ptr::null()
            } else {
                headers.as_ptr()
            },
            header_count: headers.len(),
            priority: publish.priority,
            delay_ms: duration_ms(publish.delay),
            message_id: opt(publish.message_id),
            app_id: opt(publish.app_id),
            content_encoding: opt(publish.content_encoding),
        };
        let parent = parent.map_or(std::ptr::null(), |m| m.as_raw());
        let mut err = [0 as c_char; 512];
        let rc = unsafe { f(self.ctx, parent, &raw, err.as_mut_ptr(), err.len()) };
        if rc == 0 {
            Ok(())
        } else {
            let why = c_buffer_text(&err);
            Err(if why.is_empty() {
                "publish failed".to_string()
            } else {
                why
            })
        }
    }
}

/// A metric from [`Context::counter`], [`Context::gauge`] or
/// [`Context::histogram`]. Valid for the life of the process; update it from
/// any thread.
#[derive(Clone, Copy)]
pub struct Metric {
    host: &'static ffi::foxw_host_api,
    raw: *mut ffi::foxw_metric,
}

unsafe impl Send for Metric {}
unsafe impl Sync for Metric {}

impl Metric {
    /// Counter: adds `value` (negative values are ignored). Gauge: sets it.
    /// Histogram: observes it.
    pub fn update(&self, value: f64) {
        if let Some(f) = self.host.metric_update {
            unsafe { f(self.raw, value) }
        }
    }

    /// Adds one to a counter.
    pub fn inc(&self) {
        self.update(1.0)
    }
}

/// A message to publish with [`Context::publish`]. Borrowed fields are read
/// only during the call.
#[derive(Clone, Debug, Default)]
pub struct Publish<'a> {
    /// A queue name from the daemon's config.
    pub queue: &'a str,
    pub payload: &'a [u8],
    pub message_type: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// Defaults to the parent's.
    pub correlation_id: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub priority: u8,
    pub delay: Duration,
    /// ABI 1.1 (a 1.0 daemon ignores it); default: a fresh unique id.
    pub message_id: Option<&'a str>,
    /// ABI 1.1 (a 1.0 daemon ignores it).
    pub app_id: Option<&'a str>,
    /// ABI 1.1 (a 1.0 daemon ignores it).
    pub content_encoding: Option<&'a str>,
}

impl<'a> Publish<'a> {
    pub fn new(queue: &'a str, payload: &'a [u8]) -> Publish<'a> {
        Publish {
            queue,
            payload,
            ..Publish::default()
        }
    }
    pub fn message_type(mut self, value: &'a str) -> Self {
        self.message_type = Some(value);
        self
    }
    pub fn content_type(mut self, value: &'a str) -> Self {
        self.content_type = Some(value);
        self
    }
    pub fn correlation_id(mut self, value: &'a str) -> Self {
        self.correlation_id = Some(value);
        self
    }
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }
    pub fn priority(mut self, value: u8) -> Self {
        self.priority = value;
        self
    }
    pub fn delay(mut self, value: Duration) -> Self {
        self.delay = value;
        self
    }
    pub fn message_id(mut self, value: &'a str) -> Self {
        self.message_id = Some(value);
        self
    }
    pub fn app_id(mut self, value: &'a str) -> Self {
        self.app_id = Some(value);
        self
    }
    pub fn content_encoding(mut self, value: &'a str) -> Self {
        self.content_encoding = Some(value);
        self
    }
}

pub(crate) fn raw_str(bytes: &[u8]) -> ffi::foxw_str {
    if bytes.is_empty() {
        ffi::foxw_str::EMPTY
    } else {
        ffi::foxw_str {
            ptr: bytes.as_ptr() as *const c_char,
            len: bytes.len(),
        }
    }
}

/// Milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    let ms = d.as_millis();
    if ms > u64::MAX as u128 {
        u64::MAX
    } else {
        ms as u64
    }
}
