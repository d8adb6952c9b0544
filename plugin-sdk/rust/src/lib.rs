//! Write foxworker handler plugins in Rust.
//!
//! A plugin is a `cdylib` that exports the two functions of the plugin ABI
//! (`plugin-sdk/include/foxworker/plugin.h`). This crate mirrors that header
//! by hand in [`ffi`] and adds a safe layer: a [`Plugin`] trait for the
//! per-instance state, handler methods that take a [`Message`] and return a
//! [`Verdict`], a [`Context`] for logging, metrics, publishing and typed
//! config reads, and the [`foxworker_plugin!`] macro that writes the exported
//! functions and the static tables the daemon reads.
//!
//! ```no_run
//! use foxworker_plugin::{foxworker_plugin, Config, Context, Message, Plugin, Verdict};
//!
//! struct Hello {
//!     ctx: Context,
//!     greeting: String,
//! }
//!
//! impl Plugin for Hello {
//!     fn create(ctx: &Context, config: &Config) -> Result<Self, String> {
//!         let greeting = config.string("greeting")?.unwrap_or_default();
//!         Ok(Hello { ctx: *ctx, greeting })
//!     }
//! }
//!
//! impl Hello {
//!     fn greet(&mut self, msg: &Message) -> Verdict {
//!         match msg.payload_str() {
//!             Ok("") | Err(_) => Verdict::reject("expected a name"),
//!             Ok(name) => {
//!                 self.ctx.info(&format!("{}, {}!", self.greeting, name));
//!                 Verdict::Ack
//!             }
//!         }
//!     }
//! }
//!
//! foxworker_plugin! {
//!     name: "hello",
//!     version: "1.0.0",
//!     description: "Greets people",
//!     instance: Hello,
//!     model: PerSlot,
//!     config: [
//!         "greeting": String = "hello" => "How to greet",
//!     ],
//!     handlers: [
//!         "greet" => Hello::greet,
//!     ],
//! }
//! # fn main() {}
//! ```
//!
//! Panics never cross into the daemon: every function the daemon calls runs
//! the plugin's code under `std::panic::catch_unwind`. A panicking handler
//! becomes a retry with the reason `panic: <message>`; a panic in `create`
//! refuses the instance with that message. Build with the default
//! `panic = "unwind"`: with `panic = "abort"` a panic ends the daemon.
//!
//! Supported Rust: 1.63 (Debian 12's rustc) and later.

pub mod ffi;

mod config;
mod context;
mod message;

#[doc(hidden)]
pub mod __private;

#[macro_use]
mod macros;

pub use config::{Config, ConfigError, ConfigErrorKind};
pub use context::{Context, Level, Metric, Publish};
pub use message::{HeaderType, Message, NumericProperty, Property};

use std::time::Duration;

/// What a handler decided about a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done: the message is acknowledged and removed.
    Ack,
    /// A transient failure: the queue's retry policy decides whether attempts
    /// remain. `delay` asks for a retry delay (the daemon clamps it); `None`
    /// lets the policy decide.
    Retry { reason: String, delay: Option<Duration> },
    /// A permanent failure: dead-lettered at once with the reason.
    Reject { reason: String },
}

impl Verdict {
    /// A retry after the retry policy's delay.
    pub fn retry(reason: impl Into<String>) -> Verdict {
        Verdict::Retry {
            reason: reason.into(),
            delay: None,
        }
    }

    /// A retry that asks for `delay` before the next attempt.
    pub fn retry_after(reason: impl Into<String>, delay: Duration) -> Verdict {
        Verdict::Retry {
            reason: reason.into(),
            delay: Some(delay),
        }
    }

    /// A permanent failure.
    pub fn reject(reason: impl Into<String>) -> Verdict {
        Verdict::Reject { reason: reason.into() }
    }
}

/// How the daemon creates instances and calls handlers on them (the
/// header's FOXW_INSTANCE_*). Named in [`foxworker_plugin!`]'s `model:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum InstanceModel {
    /// An instance never runs two messages at once; the daemon creates as
    /// many as the queues' concurrency needs. Handlers take `&mut self`.
    PerSlot = ffi::FOXW_INSTANCE_PER_SLOT,
    /// One instance per queue, called from several threads at once.
    /// Handlers take `&self`, and the instance type must be `Sync`.
    Shared = ffi::FOXW_INSTANCE_SHARED,
    /// One instance per handler thread and queue. Handlers take `&mut self`.
    PerThread = ffi::FOXW_INSTANCE_PER_THREAD,
}

/// The type of a config key in the schema (the header's FOXW_CONFIG_*).
/// Named in [`foxworker_plugin!`]'s `config:` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ConfigType {
    String = ffi::FOXW_CONFIG_STRING,
    Int = ffi::FOXW_CONFIG_INT,
    Double = ffi::FOXW_CONFIG_DOUBLE,
    Bool = ffi::FOXW_CONFIG_BOOL,
    /// "250ms", "30s", "1h": read with [`Config::duration`].
    Duration = ffi::FOXW_CONFIG_DURATION,
    StringList = ffi::FOXW_CONFIG_STRING_LIST,
    /// A mapping of strings to strings.
    Map = ffi::FOXW_CONFIG_MAP,
}

/// The per-instance state of a plugin, and its lifecycle hooks. The daemon
/// calls them on its control thread; handlers run on handler threads, so an
/// instance must be `Send` (and `Sync` for [`InstanceModel::Shared`]).
/// Dropping the instance is the ABI's `destroy`.
pub trait Plugin: Sized + Send + 'static {
    /// Creates one instance from the plugin's config. An `Err` refuses it:
    /// the daemon does not start (or keeps its previous config on a reload)
    /// and reports the message.
    fn create(ctx: &Context, config: &Config) -> Result<Self, String>;

    /// Runs once when the daemon loads the plugin, before any `create`.
    /// An `Err` refuses loading. Publishing is not available here.
    fn init(_ctx: &Context) -> Result<(), String> {
        Ok(())
    }

    /// Runs once after every instance was dropped. The `Context` must not
    /// be used after it returns.
    fn shutdown(_ctx: &Context) {}
}
