// The backends and middleware built into foxworkerd, registered with
// ExtensionRegistry::Global(). Adding an extension adds its line here (and,
// for a backend, its factory's line).
#ifndef FOXWORKER_APP_BUILTIN_EXTENSIONS_H_
#define FOXWORKER_APP_BUILTIN_EXTENSIONS_H_

namespace foxworker {

// What reading a config needs: each extension's options, parse, format and
// checks, without the backends' factories, so foxworkerctl links no broker
// client. Once; later calls do nothing. Safe to call from several threads.
void RegisterBuiltinConfig();

// What running the daemon needs: RegisterBuiltinConfig() plus each
// backend's factory. foxworkerd and the tests call it before they read a
// config. Once; later calls do nothing. Safe to call from several threads.
void RegisterBuiltinExtensions();

}  // namespace foxworker

#endif  // FOXWORKER_APP_BUILTIN_EXTENSIONS_H_
