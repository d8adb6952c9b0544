// The `type: rabbitmq` backend keys: parsing, validation and the password
// redaction that every printer of an AMQP URL uses.
#ifndef FOXWORKER_CONFIG_RABBITMQ_CONFIG_H_
#define FOXWORKER_CONFIG_RABBITMQ_CONFIG_H_

#include <string_view>

#include "daemon/config/config.h"
#include "daemon/config/yaml_reader.h"

namespace foxworker {

inline constexpr std::string_view kRabbitMqBackendKeys[] = {
    "type",        "url",          "tls",           "heartbeat",         "connection_name",
    "declare",     "queue_type",   "delayed_retries", "reconnect_initial", "reconnect_max"};

// Reads one key of a rabbitmq backend (any of kRabbitMqBackendKeys but
// "type") into `options`.
Status ParseRabbitMqBackendKey(const YamlFile& file, const MappingEntry& entry,
                               RabbitMqBackendOptions* options);

// Checks the backend's options as a whole (after every key was read).
Status CheckRabbitMqBackend(const BackendConfig& backend);

// The keys of a queue's `rabbitmq:` mapping.
inline constexpr std::string_view kRabbitMqQueueKeys[] = {
    "durable",  "queue_type",        "arguments",         "exchange",
    "bindings", "dead_letter_queue", "retry_queue_prefix"};

// Reads a queue's `rabbitmq:` mapping (`entry`) into `options`.
Status ParseRabbitMqQueueOptions(const YamlFile& file, const MappingEntry& entry,
                                 RabbitMqQueueOptions* options);

// Checks every queue's `rabbitmq:` settings against its backend and the
// other queues (after every file was read and references were checked).
Status CheckRabbitMqQueues(const Config& config);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_RABBITMQ_CONFIG_H_
