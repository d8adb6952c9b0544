// The console's page, script and style sheet (daemon/app/admin/console/),
// compiled into the binary by cmake/embed_console.cmake: no files to
// install, nothing fetched from elsewhere.
#ifndef FOXWORKER_APP_ADMIN_CONSOLE_ASSETS_H_
#define FOXWORKER_APP_ADMIN_CONSOLE_ASSETS_H_

#include <cstddef>
#include <string_view>

namespace foxworker {

struct ConsoleAsset {
  const char* path;          // "/index.html", "/console/app.js"
  const char* content_type;
  const char* data;
  size_t size;
  const char* etag;          // a hash of the content
};

// The asset served at `path`, or null.
const ConsoleAsset* FindConsoleAsset(std::string_view path);

}  // namespace foxworker

#endif  // FOXWORKER_APP_ADMIN_CONSOLE_ASSETS_H_
