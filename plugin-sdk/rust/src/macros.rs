/// Declares a plugin: writes the two exported functions of the ABI
/// (`foxworker_plugin_magic`, `foxworker_plugin_init_v1`) and the static
/// magic block, config schema and handler table they return. Use it once, in
/// the crate root of a `cdylib`.
///
/// ```text
/// foxworker_plugin! {
///     name: "hello_rust",             // [a-z0-9_]+, checked at compile time
///     version: "1.0.0",
///     description: "Greets people",
///     instance: Hello,                // implements foxworker_plugin::Plugin
///     model: PerSlot,                 // PerSlot | PerThread: handlers take &mut self
///                                     // Shared: handlers take &self, Hello: Sync
///     config: [                       // optional: the schema
///         "greeting": String = "hello" => "How to greet",
///         "token": String required => "API token",
///         "tags": StringList => "Tags",   // no default: Ok(None) when absent
///     ],
///     handlers: [                     // message type => fn(&mut Hello, &Message) -> Verdict
///         "greet" => Hello::greet,
///         "*" => Hello::anything_else,
///     ],
/// }
/// ```
///
/// Config types are the variants of [`crate::ConfigType`]: `String`, `Int`,
/// `Double`, `Bool`, `Duration`, `StringList`, `Map`. A default is YAML
/// scalar text (`"30s"`, `"256"`; a number or `true` works too).
#[macro_export]
macro_rules! foxworker_plugin {
    (
        name: $name:literal,
        version: $version:literal,
        description: $description:literal,
        instance: $instance:ty,
        model: $model:ident,
        $( config: [
            $( $key:literal : $kind:ident $( = $default:literal )? $( $required:ident )? => $key_help:literal ),* $(,)?
        ], )?
        handlers: [ $( $handler:literal => $handler_fn:path ),+ $(,)? ] $(,)?
    ) => {
        const _: () = assert!(
            $crate::__private::valid_name($name),
            "a plugin name is [a-z0-9_]+"
        );

        const __FOXW_CONFIG_SCHEMA: &[$crate::ffi::foxw_config_key] = &[
            $( $( $crate::ffi::foxw_config_key {
                struct_size: ::std::mem::size_of::<$crate::ffi::foxw_config_key>(),
                name: concat!($key, "\0").as_ptr() as *const ::std::os::raw::c_char,
                type_: $crate::ConfigType::$kind as i32,
                required: $crate::foxworker_plugin!(@required $( $required )?),
                default_value: $crate::foxworker_plugin!(@default $( $default )?),
                description: concat!($key_help, "\0").as_ptr() as *const ::std::os::raw::c_char,
            }, )* )?
        ];

        static __FOXW_PLUGIN_INFO: $crate::ffi::foxw_plugin_info = $crate::ffi::foxw_plugin_info {
            struct_size: ::std::mem::size_of::<$crate::ffi::foxw_plugin_info>(),
            magic: $crate::ffi::FOXW_PLUGIN_MAGIC_VALUE,
            abi_major: $crate::ffi::FOXW_ABI_MAJOR,
            abi_minor: $crate::ffi::FOXW_TARGET_ABI_MINOR,
            sdk_minor: $crate::ffi::FOXW_ABI_MINOR,
            reserved: 0,
            name: concat!($name, "\0").as_ptr() as *const ::std::os::raw::c_char,
            version: concat!($version, "\0").as_ptr() as *const ::std::os::raw::c_char,
            description: concat!($description, "\0").as_ptr() as *const ::std::os::raw::c_char,
            config_schema: if __FOXW_CONFIG_SCHEMA.is_empty() {
                ::std::ptr::null()
            } else {
                __FOXW_CONFIG_SCHEMA.as_ptr()
            },
            config_key_count: __FOXW_CONFIG_SCHEMA.len(),
            config_key_size: ::std::mem::size_of::<$crate::ffi::foxw_config_key>(),
        };

        const __FOXW_HANDLERS: &[$crate::ffi::foxw_handler_def] = &[
            $( $crate::ffi::foxw_handler_def {
                struct_size: ::std::mem::size_of::<$crate::ffi::foxw_handler_def>(),
                name: concat!($handler, "\0").as_ptr() as *const ::std::os::raw::c_char,
                handle: Some({
                    extern "C" fn trampoline(
                        instance: *mut ::std::os::raw::c_void,
                        msg: *const $crate::ffi::foxw_message,
                        out: *mut $crate::ffi::foxw_outcome,
                    ) -> $crate::ffi::foxw_verdict {
                        unsafe {
                            $crate::__private::handle(msg, out, |message| {
                                $handler_fn($crate::foxworker_plugin!(@instance $model, $instance, instance), message)
                            })
                        }
                    }
                    trampoline as $crate::ffi::foxw_handle_fn
                }),
                handle_batch: None,
                flags: 0,
                reserved: 0,
            }, )+
        ];

        static __FOXW_PLUGIN_V1: $crate::ffi::foxw_plugin_v1 = $crate::ffi::foxw_plugin_v1 {
            struct_size: ::std::mem::size_of::<$crate::ffi::foxw_plugin_v1>(),
            instance_model: $crate::InstanceModel::$model as u32,
            flags: 0,
            handlers: __FOXW_HANDLERS.as_ptr(),
            handler_count: __FOXW_HANDLERS.len(),
            handler_size: ::std::mem::size_of::<$crate::ffi::foxw_handler_def>(),
            create: Some($crate::__private::create::<$instance>),
            destroy: Some($crate::__private::destroy::<$instance>),
            shutdown: Some($crate::__private::shutdown::<$instance>),
        };

        /// The ABI's magic function: the plugin's static magic block.
        #[no_mangle]
        pub extern "C" fn foxworker_plugin_magic() -> *const $crate::ffi::foxw_plugin_info {
            &__FOXW_PLUGIN_INFO
        }

        /// The ABI's init: checks the host, then returns the plugin's
        /// definition.
        ///
        /// # Safety
        /// Called by the daemon, with the arguments plugin.h describes.
        #[no_mangle]
        pub unsafe extern "C" fn foxworker_plugin_init_v1(
            host: *const $crate::ffi::foxw_host_api,
            ctx: *mut $crate::ffi::foxw_plugin_ctx,
            err: *mut ::std::os::raw::c_char,
            err_cap: usize,
        ) -> *const $crate::ffi::foxw_plugin_v1 {
            $crate::__private::init::<$instance>(host, ctx, err, err_cap, &__FOXW_PLUGIN_V1)
        }
    };

    (@required) => { false };
    (@required required) => { true };
    (@required $other:ident) => {
        compile_error!(concat!("expected `required` or nothing after the config type, found `", stringify!($other), "`"))
    };
    (@default) => { ::std::ptr::null() };
    (@default $default:literal) => {
        concat!($default, "\0").as_ptr() as *const ::std::os::raw::c_char
    };
    (@instance PerSlot, $instance:ty, $ptr:ident) => { $crate::__private::exclusive::<$instance>($ptr) };
    (@instance PerThread, $instance:ty, $ptr:ident) => { $crate::__private::exclusive::<$instance>($ptr) };
    (@instance Shared, $instance:ty, $ptr:ident) => { $crate::__private::shared::<$instance>($ptr) };
}
