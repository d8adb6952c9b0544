// The backends and middleware built into foxworkerd, registered with
// ExtensionRegistry::Global(). foxworkerd, foxworkerctl and the tests call
// this before they read a config.
#ifndef FOXWORKER_BUILTIN_EXTENSIONS_H_
#define FOXWORKER_BUILTIN_EXTENSIONS_H_

namespace foxworker {

// Registers every built-in extension, once; later calls do nothing. Safe to
// call from several threads.
void RegisterBuiltinExtensions();

}  // namespace foxworker

#endif  // FOXWORKER_BUILTIN_EXTENSIONS_H_
