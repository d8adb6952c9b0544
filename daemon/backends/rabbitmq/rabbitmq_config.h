// `type: rabbitmq` in `backends:` and a queue's `rabbitmq:` block: the
// options, their parse and checks, the --check-config format, the password
// redaction that every printer of an AMQP URL uses, and the registration
// that makes the type known.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_CONFIG_H_
#define FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/config/yaml_reader.h"
#include "daemon/core/backend_queue_options.h"

namespace foxworker {

class ExtensionRegistry;

enum class AmqpQueueType { kQuorum, kClassic };

// "quorum", "classic".
std::string_view AmqpQueueTypeName(AmqpQueueType type);
Result<AmqpQueueType> ParseAmqpQueueType(std::string_view name);

struct AmqpTlsOptions {
  std::string ca;    // CA bundle (PEM); empty = the system's default
  std::string cert;  // client certificate (PEM); empty = none
  std::string key;   // client key (PEM); required with cert
  bool verify = true;  // verify the broker's certificate and host name

  bool operator==(const AmqpTlsOptions&) const = default;
};

struct RabbitMqBackendOptions : EquatableOptions<RabbitMqBackendOptions, BackendOptions> {
  std::string url = "amqp://guest:guest@localhost:5672";  // amqp:// or amqps://; "/" after the port = vhost ""
  AmqpTlsOptions tls;               // used with amqps://
  Duration heartbeat{30000};        // 0 = no heartbeats
  std::string connection_name = "foxworkerd";  // shown in the management UI
  bool declare = true;              // declare each queue and its {queue}-dlq
  AmqpQueueType queue_type = AmqpQueueType::kQuorum;  // for queues the daemon declares
  bool delayed_retries = true;      // retry through per-delay-tier TTL queues
  Duration reconnect_initial{500};  // first reconnect delay (then doubled, jittered)
  Duration reconnect_max{30000};    // cap of the reconnect delay

  bool operator==(const RabbitMqBackendOptions&) const = default;
};

// `url` with its password replaced by "***" (for logs and --check-config).
std::string RedactUrl(std::string_view url);

// One entry of an AMQP `arguments` table (x-max-length: 1000). The YAML
// scalar's type decides the AMQP type: unquoted integers are signed 64-bit,
// unquoted decimals doubles, unquoted true/false booleans, everything else a
// UTF-8 string.
struct AmqpArgument {
  enum class Kind { kString, kInt, kDouble, kBool };
  std::string key;
  Kind kind = Kind::kString;
  std::string text;  // kString
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
  bool operator==(const AmqpArgument&) const = default;
};

// "direct", "topic", "fanout", "headers".
inline constexpr std::string_view kAmqpExchangeTypes[] = {"direct", "topic", "fanout", "headers"};

// An exchange a queue declares (exchange.declare).
struct AmqpExchangeConfig {
  std::string name;
  std::string type = "direct";
  bool durable = true;
  bool auto_delete = false;
  std::vector<AmqpArgument> arguments;
  SourceMark mark;
  bool operator==(const AmqpExchangeConfig&) const = default;
};

// queue.bind of the queue to `exchange`, once per routing key.
struct AmqpBindingConfig {
  std::string exchange;                    // default: the queue's declared exchange
  std::vector<std::string> routing_keys;   // at least one ("" for fanout/headers)
  std::vector<AmqpArgument> arguments;     // e.g. x-match for a headers exchange
  SourceMark mark;
  bool operator==(const AmqpBindingConfig&) const = default;
};

// A queue's `rabbitmq:` settings (queues on a rabbitmq backend only). Names
// may use "{queue}", the AMQP queue (the queue's `source`).
struct RabbitMqQueueOptions : BackendQueueOptions {
  bool present = false;  // the queue has a `rabbitmq:` key
  bool durable = true;
  std::optional<AmqpQueueType> queue_type;  // unset = the backend's queue_type
  std::vector<AmqpArgument> arguments;      // of the queue.declare
  std::optional<AmqpExchangeConfig> exchange;
  std::vector<AmqpBindingConfig> bindings;
  std::string dead_letter_queue = "{queue}-dlq";
  std::string retry_queue_prefix = "{queue}-retry-";  // + the tier ("1.5s")
  SourceMark mark;  // of the `rabbitmq:` key

  bool Equals(const BackendQueueOptions& other) const override;
  bool operator==(const RabbitMqQueueOptions& other) const;
};

// The settings in `options` (a queue's parsed `rabbitmq:` block), or the
// defaults when it is null.
const RabbitMqQueueOptions& RabbitMqQueueOptionsOf(const BackendQueueOptions* options);

// `pattern` with every "{queue}" replaced by `queue`.
std::string ExpandQueuePattern(std::string_view pattern, std::string_view queue);

// Adds `type: rabbitmq` with its queue block `rabbitmq:`: keys, parse,
// checks, format and factory.
void RegisterRabbitMqBackend(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_CONFIG_H_
