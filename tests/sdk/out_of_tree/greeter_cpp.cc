// An out-of-tree plugin in C++ (plugin.hpp), built against the installed SDK
// only: a batch handler that acks "hello" and rejects anything else.
// Indexing a Batch instantiates standard-library templates (std::to_string's
// helpers) that hidden visibility does not hide: the export map must.
#include <foxworker/plugin.hpp>

#include <string_view>

namespace {

class Greeter {
 public:
  Greeter(foxworker::PluginContext&, std::string_view) {}

  void Greet(foxworker::Batch& batch) {
    for (size_t i = 0; i < batch.size(); ++i) {
      batch.Set(i, batch[i].payload() == "hello" ? foxworker::Verdict::Ack()
                                                 : foxworker::Verdict::Reject("expected hello"));
    }
  }
};

}  // namespace

FOXWORKER_PLUGIN(Greeter, "greeter_cpp", "1.0.0", FOXW_INSTANCE_SHARED,
                 FOXWORKER_BATCH_HANDLER(Greeter, Greet, "*"));
