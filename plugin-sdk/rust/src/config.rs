//! Typed reads of the plugin's config through the host's config services:
//! the `config:` mapping of the plugin's YAML entry, with the schema's
//! defaults applied and values converted to the schema's types.
use std::ffi::CString;
use std::fmt;
use std::os::raw::c_char;
use std::time::Duration;

use crate::context::Context;
use crate::ffi;
use crate::message::bytes;

/// The plugin's config, as `create` receives it. Every read returns
/// `Ok(None)` for a key that is absent and has no default.
pub struct Config<'a> {
    ctx: Context,
    json: &'a str,
}

/// Why a config key could not be read. Converts into `String`, so `?` works
/// in [`crate::Plugin::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub kind: ConfigErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The value cannot be read as the type asked for.
    WrongType(&'static str),
    /// The key contains a NUL byte.
    BadKey,
    /// The host returned a result this crate does not know.
    Unexpected(i32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConfigErrorKind::WrongType(what) => write!(f, "config key \"{}\": not {}", self.key, what),
            ConfigErrorKind::BadKey => write!(f, "config key {:?}: contains a NUL byte", self.key),
            ConfigErrorKind::Unexpected(rc) => {
                write!(f, "config key \"{}\": the host answered {}", self.key, rc)
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

type Service<T> = unsafe extern "C" fn(*const ffi::foxw_plugin_ctx, *const c_char, *mut T) -> i32;

impl<'a> Config<'a> {
    pub(crate) fn new(ctx: Context, json: &'a str) -> Config<'a> {
        Config { ctx, json }
    }

    /// The config as the JSON object `create` received (empty outside
    /// `create`).
    pub fn json(&self) -> &str {
        self.json
    }

    fn read<T>(
        &self,
        key: &str,
        service: Option<Service<T>>,
        what: &'static str,
        mut value: T,
    ) -> Result<Option<T>, ConfigError> {
        let error = |kind| ConfigError {
            key: key.to_string(),
            kind,
        };
        let c_key = CString::new(key).map_err(|_| error(ConfigErrorKind::BadKey))?;
        // A host without the service (never a 1.0 host) reads as absent.
        let service = match service {
            Some(f) => f,
            None => return Ok(None),
        };
        match unsafe { service(self.ctx.raw_ctx(), c_key.as_ptr(), &mut value) } {
            ffi::FOXW_CONFIG_OK => Ok(Some(value)),
            ffi::FOXW_CONFIG_ABSENT => Ok(None),
            ffi::FOXW_CONFIG_WRONG_TYPE => Err(error(ConfigErrorKind::WrongType(what))),
            rc => Err(error(ConfigErrorKind::Unexpected(rc))),
        }
    }

    /// A string (numbers and booleans read as their text).
    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let host = self.ctx.raw_host();
        let raw = self.read(key, host.config_string, "a string", ffi::foxw_str::EMPTY)?;
        Ok(raw.map(|s| String::from_utf8_lossy(unsafe { bytes(s) }).into_owned()))
    }

    /// An integer (or a string of one).
    pub fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.read(key, self.ctx.raw_host().config_int, "an integer", 0)
    }

    /// Any number.
    pub fn double(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.read(key, self.ctx.raw_host().config_double, "a number", 0.0)
    }

    /// true/false, or "true", "yes", "on", "false", "no", "off".
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.read(key, self.ctx.raw_host().config_bool, "a boolean", false)
    }

    /// A duration ("250ms", "30s", "1h") or an integer of milliseconds.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let ms = self.read(key, self.ctx.raw_host().config_duration_ms, "a duration", 0)?;
        Ok(ms.map(Duration::from_millis))
    }

    /// A list of strings.
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        Ok(self
            .items(key, "a list")?
            .map(|items| items.into_iter().map(|(_, value)| value).collect()))
    }

    /// A mapping of strings to strings, in the config's order.
    pub fn map(&self, key: &str) -> Result<Option<Vec<(String, String)>>, ConfigError> {
        self.items(key, "a mapping")
    }

    fn items(&self, key: &str, what: &'static str) -> Result<Option<Vec<(String, String)>>, ConfigError> {
        let host = self.ctx.raw_host();
        let count = match self.read(key, host.config_count, what, 0usize)? {
            Some(n) => n,
            None => return Ok(None),
        };
        let item = match host.config_item {
            Some(f) => f,
            None => return Ok(None),
        };
        let c_key = CString::new(key).map_err(|_| ConfigError {
            key: key.to_string(),
            kind: ConfigErrorKind::BadKey,
        })?;
        let mut out = Vec::with_capacity(count);
        for index in 0..count {
            let mut name = ffi::foxw_str::EMPTY;
            let mut value = ffi::foxw_str::EMPTY;
            let rc = unsafe { item(self.ctx.raw_ctx(), c_key.as_ptr(), index, &mut name, &mut value) };
            match rc {
                ffi::FOXW_CONFIG_OK => unsafe {
                    out.push((
                        String::from_utf8_lossy(bytes(name)).into_owned(),
                        String::from_utf8_lossy(bytes(value)).into_owned(),
                    ))
                },
                ffi::FOXW_CONFIG_ABSENT => break,
                ffi::FOXW_CONFIG_WRONG_TYPE => {
                    return Err(ConfigError {
                        key: key.to_string(),
                        kind: ConfigErrorKind::WrongType(what),
                    })
                }
                rc => {
                    return Err(ConfigError {
                        key: key.to_string(),
                        kind: ConfigErrorKind::Unexpected(rc),
                    })
                }
            }
        }
        Ok(Some(out))
    }
}
